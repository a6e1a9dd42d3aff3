import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import {
  type KubernetesResource,
  parseResource,
  type TaskRecord,
  type TaskSubmitted,
} from '@computepods/protocol';
import { defined, isAlive, TempDir, until } from '@computepods/testkit';
import { describe, expect, it } from 'vitest';
import type { BackendContext } from './backend.js';
import { UnsafeValueError } from './errors.js';
import { Executor } from './executor.js';
import { kubernetesHandle } from './handle.js';
import { KubernetesBackend } from './kubernetes-backend.js';
import { jobNameFor } from './kubernetes-names.js';
import { crashRunner } from './test-crash-runner.js';
import { FileHooks } from './test-file-hooks.js';
import { RecordingHooks } from './test-hooks.js';
import { kubeExecutor, kubeProfile, testKubeApi } from './test-kube-setup.js';
import { numberedTasks } from './test-tasks.js';

/*
 * The kubernetes backend through @kubernetes/client-node against KubeApi, the test kit's
 * STAND-IN for an API server (no real one can run here): its Jobs' commands run as real local
 * processes, so logs, exit codes, suspend and delete are real; every object it is sent and
 * returns is checked against the Kubernetes OpenAPI schema.
 */

const NS = 'cp-test';
const tmp = new TempDir('cp-k8s-');
const kube = testKubeApi(tmp, { namespace: NS });

function resourceJson(config = kube.kubeconfig, extra: Record<string, unknown> = {}) {
  return {
    ...extra,
    ...kube.resourceJson({
      id: 'k8s',
      name: 'Kubernetes',
      jobsDir: tmp.join('jobs'),
      kubeconfig: config,
    }),
  };
}
const profile = kubeProfile();

function setup(
  queue: string | undefined = 'team-a',
  config = kube.kubeconfig,
  extra: Record<string, unknown> = {},
) {
  return kubeExecutor(resourceJson(config, extra), profile, queue);
}

const task = numberedTasks('k', 'k8s', tmp.path);

describe('kubernetes backend (against the KubeApi stand-in)', { timeout: 60_000 }, () => {
  it('runs a task as a Job and finishes with its log, exit code and the Kueue queue label', async () => {
    const { hooks, ex } = setup('team-a');
    const t = task('echo hello; echo oops >&2; echo "$GREETING"; pwd', {
      env: { GREETING: 'from env' },
    });
    await ex.submit(t);
    const rec = await ex.wait(t.taskId);
    expect(rec.state, rec.reason).toBe('finished');
    expect(rec.exitCode).toBe(0);
    // One log, stdout and stderr merged as the kubelet keeps them (their order is the pipes').
    const log = await ex.logs(t.taskId);
    expect(log.split('\n').sort()).toEqual(['', 'from env', 'hello', 'oops', tmp.path].sort());
    expect(await ex.logs(t.taskId, 'stderr')).toBe('');
    const job = defined(kube.jobOf(ex, t.taskId), 'kube.jobOf(ex, t.taskId)');
    expect(job.metadata.labels).toMatchObject({
      'kueue.x-k8s.io/queue-name': 'team-a',
      'app.kubernetes.io/managed-by': 'computepods',
      'computepods.io/resource': 'k8s',
    });
    expect(job.metadata.uid).toBe(rec.jobId);
    // Marked ended once the end was recorded (kubernetes-cleanup.ts): kept 10 minutes by default.
    const annotations = () =>
      (kube.jobOf(ex, t.taskId)?.metadata as { annotations?: Record<string, string> } | undefined)
        ?.annotations;
    await until(() => annotations()?.['computepods.io/outcome'] !== undefined, 'the Job marked');
    expect(annotations()).toEqual({
      'computepods.io/task-id': t.taskId,
      'computepods.io/ended': expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      'computepods.io/outcome': 'finished',
    });
    const spec = job.spec as { template: { spec: Record<string, unknown> } };
    expect(spec.template.spec.serviceAccountName).toBe('computepods-runner');
    expect(hooks.states(t.taskId)[0]).toBe('created');
    expect(hooks.states(t.taskId).at(-1)).toBe('finished');
    expect(hooks.recordedBeforePublished()).toBe(true);
    expect(kube.api.invalidResponses).toEqual([]);
    await ex.close();
  });

  it('a failing command fails with the reason from the Job conditions and its exit code', async () => {
    const { ex } = setup();
    const t = task('echo about to fail; exit 3');
    await ex.submit(t);
    const rec = await ex.wait(t.taskId);
    expect(rec.state).toBe('failed');
    expect(rec.exitCode).toBe(3);
    expect(rec.reason).toMatch(/BackoffLimitExceeded: Job has reached the specified backoff limit/);
    expect(rec.reason).toContain('exit code 3');
    expect(await ex.logs(t.taskId)).toBe('about to fail\n');
    await ex.close();
  });

  it('fails a task that names an environment, saying the backend does not make one yet', async () => {
    const { ex } = setup();
    const t = task('true', { environment: { requirements: ['numpy'] } });
    await ex.submit(t);
    const rec = await ex.wait(t.taskId);
    expect(rec.state).toBe('failed');
    expect(rec.reason).toMatch(
      /names an environment, which the Kubernetes backend does not make yet/,
    );
    await ex.close();
  });

  it('pause suspends the Job (its pending pod goes, nothing runs); resume runs it once', async () => {
    const { hooks, ex } = setup();
    const marker = tmp.join('pause-marker');
    const t = task(`echo run >> ${marker}`);
    kube.api.startPods = false;
    try {
      await ex.submit(t);
      await until(
        () => ex.get(t.taskId)?.jobId !== undefined && kube.api.pods().length > 0,
        'the Job created, its pod pending',
      );
      await ex.pause(t.taskId);
      const job = defined(kube.jobOf(ex, t.taskId), 'kube.jobOf(ex, t.taskId)');
      expect(job.spec.suspend).toBe(true);
      expect(
        (job.status.conditions as { type: string; status: string }[]).find(
          (c) => c.type === 'Suspended',
        )?.status,
      ).toBe('True');
      const h = defined(
        kubernetesHandle(ex.get(t.taskId)?.handle),
        'kubernetesHandle(ex.get(t.taskId)?.handle)',
      );
      expect(kube.api.pods().filter((p) => p.metadata.labels?.['job-name'] === h.jobName)).toEqual(
        [],
      );
      await ex.resume(t.taskId);
      expect(defined(kube.jobOf(ex, t.taskId), 'kube.jobOf(ex, t.taskId)').spec.suspend).toBe(
        false,
      );
      kube.api.releasePods();
    } finally {
      kube.api.startPods = true;
    }
    const rec = await ex.wait(t.taskId);
    expect(rec.state).toBe('finished');
    expect(readFileSync(marker, 'utf8')).toBe('run\n');
    expect(hooks.states(t.taskId).slice(0, 4)).toEqual([
      'created',
      'submitted',
      'paused',
      'submitted',
    ]);
    const patches = kube.api.requests.filter((r) => r.method === 'PATCH');
    expect(patches.at(-1)?.contentType).toMatch(/json-patch/);
    await ex.close();
  });

  it('pause of a task whose pod started since the last poll leaves it running: nothing runs twice', async () => {
    const hooks = new RecordingHooks();
    // No poll runs unless the test asks: the record stays submitted while the pod runs.
    const makeBackend = (ctx: BackendContext) =>
      new KubernetesBackend(
        {
          resource: parseResource(resourceJson()) as KubernetesResource,
          profile,
          resourceId: 'k8s',
          jobsDir: tmp.join('jobs'),
          pollMs: 3_600_000,
        },
        ctx,
      );
    const ex = new Executor({ resource: 'k8s', backend: makeBackend, hooks, runner: 'test' });
    const backend = ex.backend;
    const marker = tmp.join('race-marker');
    const gate = tmp.join('race-gate');
    const t = task(`echo run >> ${marker}; while [ ! -e ${gate} ]; do sleep 0.05; done`);
    await ex.submit(t);
    await until(() => existsSync(marker), 'the pod started');
    expect(ex.get(t.taskId)?.state).toBe('submitted');
    await ex.pause(t.taskId);
    expect(defined(kube.jobOf(ex, t.taskId), 'kube.jobOf(ex, t.taskId)').spec.suspend).toBe(false);
    writeFileSync(gate, '');
    await ex.resume(t.taskId);
    await until(async () => {
      await backend.pollNow();
      return ex.get(t.taskId)?.state === 'finished';
    }, 'the task collected after resume');
    expect(readFileSync(marker, 'utf8')).toBe('run\n');
    await ex.close();
  });

  it('kill deletes the Job with foreground propagation; the pod process is gone', async () => {
    const { ex } = setup();
    const pidFile = tmp.join('kill-pid');
    const t = task(`echo $$ > ${pidFile}; echo started; exec sleep 1000`);
    await ex.submit(t);
    await until(
      () => ex.get(t.taskId)?.state === 'running' && existsSync(pidFile),
      'the task running',
    );
    await until(async () => (await ex.logs(t.taskId)).includes('started'), 'its log followed');
    const pid = Number(readFileSync(pidFile, 'utf8'));
    expect(isAlive(pid)).toBe(true);
    const name = defined(
      kubernetesHandle(ex.get(t.taskId)?.handle),
      'kubernetesHandle(ex.get(t.taskId)?.handle)',
    ).jobName;
    await ex.kill(t.taskId);
    expect((await ex.wait(t.taskId)).state).toBe('killed');
    const del = kube.api.requests.find((r) => r.method === 'DELETE' && r.path.endsWith(`/${name}`));
    expect(del?.query.propagationPolicy).toBe('Foreground');
    await until(() => !isAlive(pid), 'the pod process gone');
    await until(() => !kube.api.jobs().some((j) => j.metadata.name === name), 'the Job gone');
    await ex.close();
  });

  it('a Job deleted outside ComputePods is not taken as done', async () => {
    const { ex } = setup();
    const t = task('echo working; exec sleep 1000');
    await ex.submit(t);
    await until(() => ex.get(t.taskId)?.state === 'running', 'the task running');
    const name = defined(
      kubernetesHandle(ex.get(t.taskId)?.handle),
      'kubernetesHandle(ex.get(t.taskId)?.handle)',
    ).jobName;
    kube.api.deleteJob(NS, name, 'Background');
    const rec = await ex.wait(t.taskId);
    expect(rec.state).toBe('failed');
    expect(rec.exitCode).toBeNull();
    expect(rec.reason).toMatch(/deleted outside ComputePods.*not taken as done/);
    await ex.close();
  });

  it('a wrong bearer token is refused by the stand-in, and the task fails saying so', async () => {
    const bad = kube.api.writeKubeconfig(tmp.join('bad-kubeconfig'), 'not-the-token');
    const { ex } = setup('team-a', bad);
    const t = task('echo never');
    await ex.submit(t);
    const rec = await ex.wait(t.taskId);
    expect(rec.state).toBe('failed');
    expect(rec.reason).toMatch(/HTTP 401: Unauthorized/);
    expect(kube.api.requests.some((r) => r.status === 401)).toBe(true);
    expect(
      kube.api.jobs().some((j) => j.metadata.name === kube.jobOf(ex, t.taskId)?.metadata.name),
    ).toBe(false);
    await ex.close();
  });

  it('declared files: refused without a workspace volume or staging; with a volume, run in cwd and outputs checked', async () => {
    const files = { inputs: ['in.txt'], outputs: ['out.txt'], auxiliaries: [] };
    writeFileSync(tmp.join('in.txt'), 'shout\n');
    const plain = setup();
    const before = kube.api.jobs().length;
    const refused = task('tr a-z A-Z < in.txt > out.txt', { files });
    await plain.ex.submit(refused);
    const r0 = await plain.ex.wait(refused.taskId);
    expect(r0.state).toBe('failed');
    expect(r0.reason).toMatch(
      /has no workspace_volume while this runner serves no staging: set CP_K8S_STAGE_LISTEN/,
    );
    expect(kube.api.jobs().length).toBe(before);
    await plain.ex.close();

    const { ex } = setup('team-a', kube.kubeconfig, {
      workspace_volume: { claim_name: 'workspace', mount_path: tmp.path },
    });
    const ok = task('tr a-z A-Z < in.txt > out.txt', { files });
    await ex.submit(ok);
    const r1 = await ex.wait(ok.taskId);
    expect(r1.state, r1.reason).toBe('finished');
    expect(readFileSync(tmp.join('out.txt'), 'utf8')).toBe('SHOUT\n');
    const pod = (
      defined(kube.jobOf(ex, ok.taskId), 'kube.jobOf(ex, ok.taskId)').spec as {
        template: { spec: Record<string, unknown> };
      }
    ).template.spec;
    expect(pod.volumes).toEqual([
      { name: 'workspace', persistentVolumeClaim: { claimName: 'workspace' } },
    ]);

    const lazy = task('true', { files: { inputs: [], outputs: ['never.txt'], auxiliaries: [] } });
    await ex.submit(lazy);
    const r2 = await ex.wait(lazy.taskId);
    expect(r2.state).toBe('failed');
    expect(r2.exitCode).toBe(0);
    expect(r2.reason).toMatch(/declared output never.txt was not written/);

    const elsewhere = task('true', { files, cwd: '/var/tmp' });
    await ex.submit(elsewhere);
    expect((await ex.wait(elsewhere.taskId)).reason).toMatch(/is not on the workspace volume/);
    expect(kube.api.invalidResponses).toEqual([]);
    await ex.close();
  });

  it('hostile task ids become DNS-label Job names; hostile queue names never reach the API', async () => {
    for (const id of [
      '../../Evil Task;$(rm -rf ~)',
      'Build.Step_1:CC..foo.o',
      'UPPER.case/with/slashes',
      '---',
      'é'.repeat(200),
      `a${'-'.repeat(100)}b`,
    ]) {
      const name = jobNameFor(id);
      expect(name).toMatch(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/);
    }
    const { ex } = setup();
    // Task ids allow upper case, "_", "." and ":", and 200 characters: no DNS label takes them.
    const t = task('echo ok', { taskId: `Build.Step_1:CC..foo.o_${'X'.repeat(150)}` });
    await ex.submit(t);
    const rec = await ex.wait(t.taskId);
    expect(rec.state, rec.reason).toBe('finished');
    expect(kubernetesHandle(rec.handle)?.jobName).toMatch(
      /^cp-build-step-1-cc-foo-o-x+-[0-9a-f]{8}-[0-9a-f]{6}$/,
    );
    await ex.close();

    const before = kube.api.requests.length;
    for (const queue of ['Bad Queue!', 'team-', 'x'.repeat(64)])
      expect(() => setup(queue)).toThrow(UnsafeValueError);
    expect(kube.api.requests.length).toBe(before);
  });
});

describe('kubernetes adoption of a task recorded submitted before its Job uid was', () => {
  it('creates the Job a dead runner never created, finds the one it did: never two', async () => {
    kube.api.startPods = false;
    try {
      // First runner: the Jobs exist (pods pending); its records then lose the uid, as when it
      // died between the create and recording the uid.
      const first = setup();
      const made = task('echo made');
      await first.ex.submit(made);
      await until(() => first.ex.get(made.taskId)?.jobId !== undefined, 'the Job created');
      const madeRec = { ...defined(first.ex.get(made.taskId), 'first.ex.get(made.taskId)') };
      delete madeRec.jobId;
      await first.ex.close();
      // Another recorded with its Job's name, the runner dead before the create.
      const never = task('echo never-created');
      const name = jobNameFor(never.taskId);
      const time = new Date().toISOString();
      const neverRec: TaskRecord = {
        task: never,
        state: 'submitted',
        runner: 'test',
        handle: {
          kind: 'kubernetes',
          namespace: NS,
          jobName: name,
          logPath: tmp.join('jobs', `${name}.log`),
        },
        history: [
          { state: 'created', time },
          { state: 'submitted', time },
        ],
        updated: time,
      };
      const jobsBefore = kube.api.jobs().length;
      const second = setup();
      await second.ex.adopt([madeRec, neverRec]);
      await until(
        () => kube.api.jobs().some((j) => j.metadata.name === name),
        'the never-created Job created',
      );
      kube.api.releasePods();
      const [a, b] = await Promise.all([second.ex.wait(made.taskId), second.ex.wait(never.taskId)]);
      expect([a.state, b.state]).toEqual(['finished', 'finished']);
      expect(await second.ex.logs(made.taskId)).toBe('made\n');
      expect(await second.ex.logs(never.taskId)).toBe('never-created\n');
      // One Job more (the one never created); the existing one was found by its name (409).
      expect(kube.api.jobs().length).toBe(jobsBefore + 1);
      const madeName = defined(
        kubernetesHandle(madeRec.handle),
        'kubernetesHandle(madeRec.handle)',
      ).jobName;
      expect(
        kube.api.requests.filter(
          (r) => r.method === 'GET' && r.path.endsWith(`/jobs/${madeName}`) && r.status === 200,
        ).length,
      ).toBeGreaterThan(0);
      expect(a.jobId).toBe(kube.api.jobs().find((j) => j.metadata.name === madeName)?.metadata.uid);
      await second.ex.close();
    } finally {
      kube.api.startPods = true;
    }
  });
});

describe('kubernetes tasks survive kill -9 of the runner', { timeout: 120_000 }, () => {
  it('adopts each record from its Job: collects what ended, follows what runs, runs nothing twice', async () => {
    const records = tmp.join('crash-records');
    const runs = tmp.join('crash-runs');
    const gate = tmp.join('crash-gate');
    const gate2 = tmp.join('crash-gate2');
    writeFileSync(runs, '');
    const mk = (id: string, body: string): TaskSubmitted => ({
      taskId: id,
      resource: 'k8s',
      command: `echo ${id} >> ${runs}; ${body}`,
      cwd: tmp.path,
      env: {},
      gpu: false,
    });
    const wait = (g: string) => `while [ ! -e ${g} ]; do sleep 0.05; done`;
    const tasks = [
      mk('done-before', 'exit 0'),
      mk('ends-ok', `${wait(gate)}; echo ok`),
      mk('ends-3', `${wait(gate)}; exit 3`),
      mk('still-running', `echo early; ${wait(gate2)}; echo late`),
    ];
    const env = {
      CRASH_RECORDS: records,
      CRASH_RESOURCE: JSON.stringify(resourceJson()),
      CRASH_PROFILE: JSON.stringify(profile),
      CRASH_TASKS: JSON.stringify(tasks),
      CRASH_READY: 'done-before:finished,ends-ok:running,ends-3:running,still-running:running',
    };
    const runner = (mode: 'start' | 'recover') => crashRunner('k8s-runner', mode, env);
    const creates = () =>
      kube.api.requests.filter((r) => r.method === 'POST' && r.path.endsWith('/jobs')).length;
    const createsBefore = creates();
    const first = runner('start');
    await first.waitForOutput('ready', 60_000);
    await first.kill9();

    // The runner is dead; its Jobs are not. Two of them end while nobody watches.
    writeFileSync(gate, '');
    const byId = () =>
      new Map<string, TaskRecord>(new FileHooks(records).load().map((r) => [r.task.taskId, r]));
    const ended = (id: string) => {
      const name = kubernetesHandle(byId().get(id)?.handle)?.jobName;
      const job = kube.api.jobs().find((j) => j.metadata.name === name);
      return ((job?.status.conditions ?? []) as { type: string }[]).some(
        (c) => c.type === 'Complete' || c.type === 'Failed',
      );
    };
    await until(
      () => ended('ends-ok') && ended('ends-3'),
      'two Jobs ended while the runner was down',
    );
    expect(ended('still-running')).toBe(false);

    const stillJob = defined(
      kubernetesHandle(byId().get('still-running')?.handle),
      "kubernetesHandle(byId().get('still-running')?.handle)",
    ).jobName;
    const follows = () =>
      kube.api.requests.filter(
        (r) => r.query.follow === 'true' && r.path.includes(`/pods/${stillJob}-`),
      ).length;
    const followsBefore = follows();
    const second = runner('recover');
    // The restarted runner adopts the running task and follows its pod's log anew.
    await until(
      () => follows() > followsBefore,
      'the restarted runner following the still-running pod',
      30_000,
      () => second.output,
    );
    writeFileSync(gate2, '');
    expect(await second.exited()).toBe(0);
    expect(second.output).toContain('done');

    const recs = byId();
    expect(Object.fromEntries([...recs].map(([id, r]) => [id, [r.state, r.exitCode]]))).toEqual({
      'done-before': ['finished', 0],
      'ends-ok': ['finished', 0],
      'ends-3': ['failed', 3],
      'still-running': ['finished', 0],
    });
    // Each command ran once; no Job was created twice.
    expect(readFileSync(runs, 'utf8').trim().split('\n').sort()).toEqual(
      tasks.map((t) => t.taskId).sort(),
    );
    expect(creates() - createsBefore).toBe(4);
    expect(
      readFileSync(
        defined(
          defined(recs.get('still-running'), "recs.get('still-running')").stdoutPath,
          "recs.get('still-running').stdoutPath",
        ),
        'utf8',
      ),
    ).toBe('early\nlate\n');
    expect(kube.api.invalidResponses).toEqual([]);
  });
});
