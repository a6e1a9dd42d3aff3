import { existsSync, mkdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import {
  type KubernetesResource,
  parseResource,
  type TaskRecord,
  type TaskSubmitted,
} from '@computepods/protocol';
import { defined, TempDir, until } from '@computepods/testkit';
import { BatchV1Api, KubeConfig } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import type { BackendContext } from './backend.js';
import { Executor } from './executor.js';
import { kubernetesHandle } from './handle.js';
import { KubernetesBackend } from './kubernetes-backend.js';
import { ENDED_ANNOTATION, OUTCOME_ANNOTATION, planCleanup } from './kubernetes-cleanup.js';
import { jobNameFor } from './kubernetes-names.js';
import { crashRunner } from './test-crash-runner.js';
import { FileHooks } from './test-file-hooks.js';
import { RecordingHooks } from './test-hooks.js';
import { kubeProfile, testKubeApi } from './test-kube-setup.js';

/*
 * Ended Jobs and their files in jobs_local_dir go after their keep time (kubernetes-cleanup.ts),
 * through @kubernetes/client-node against KubeApi, the test kit's STAND-IN for an API server
 * (no real one can run here; every object it is sent and returns is checked against the
 * Kubernetes OpenAPI schema). Keep times are moved past with the backend's clock, not waited.
 */

const NS = 'cp-clean';
const HOUR = 3_600_000;
const tmp = new TempDir('cp-k8s-clean-');
const kube = testKubeApi(tmp, { namespace: NS });

const resourceJson = (id: string) =>
  kube.resourceJson({ id, name: `Kubernetes ${id}`, jobsDir: tmp.join(`jobs-${id}`) });
const profile = kubeProfile();

/** A backend whose keep times are measured with a clock the test moves on. */
function setup(
  id: string,
  keep: { okMs: number; failedMs: number },
  sweepEveryMs?: number,
  unpublishedLogs?: () => Iterable<TaskRecord>,
) {
  const clock = { offset: 0 };
  const makeBackend = (ctx: BackendContext) =>
    new KubernetesBackend(
      {
        resource: parseResource(resourceJson(id)) as KubernetesResource,
        profile,
        resourceId: id,
        jobsDir: tmp.join(`jobs-${id}`),
        pollMs: 100,
        keep,
        ...(sweepEveryMs ? { sweepEveryMs } : {}),
        ...(unpublishedLogs ? { unpublishedLogs } : {}),
        now: () => Date.now() + clock.offset,
      },
      ctx,
    );
  const hooks = new RecordingHooks();
  const ex = new Executor({ resource: id, backend: makeBackend, hooks, runner: 'test' });
  const backend = ex.backend;
  return { backend, ex, hooks, clock };
}

let n = 0;
function task(resource: string, command: string): TaskSubmitted {
  n++;
  return {
    taskId: `c${n}-${process.pid}`,
    resource,
    command,
    cwd: tmp.path,
    env: {},
    gpu: false,
  };
}

const jobNamed = (name: string | undefined) =>
  kube.api.jobs().find((j) => j.metadata.name === name);
const podsOf = (name: string) =>
  kube.api.pods().filter((p) => p.metadata.labels?.['job-name'] === name);
const annotations = (name: string | undefined) =>
  (jobNamed(name)?.metadata as { annotations?: Record<string, string> } | undefined)?.annotations;

describe('kubernetes cleanup of ended Jobs (against the KubeApi stand-in)', {
  timeout: 60_000,
}, () => {
  it('a finished task: its Job, pods and log copy go at the first sweep after its end was recorded (keep 0); a failed one: kept until its keep time', async () => {
    const { backend, ex, hooks, clock } = setup('k8s-keep', { okMs: 0, failedMs: HOUR }, 100);
    // As the runner does at start: sweeps begin with adopt, then every sweepEveryMs.
    await ex.adopt([]);
    const ok = task('k8s-keep', 'echo done');
    await ex.submit(ok);
    const okRec = await ex.wait(ok.taskId);
    expect(okRec.state, okRec.reason).toBe('finished');
    const okH = defined(kubernetesHandle(okRec.handle), 'the finished task handle');
    await until(() => !jobNamed(okH.jobName), 'the finished task Job deleted by a sweep');
    expect(podsOf(okH.jobName)).toEqual([]);
    expect(existsSync(okH.logPath)).toBe(false);
    // Marked once its end was recorded, then deleted with Background propagation.
    const calls = kube.api.requests.filter((r) => r.path.endsWith(`/jobs/${okH.jobName}`));
    const patch = calls.findIndex((r) => r.method === 'PATCH');
    const del = calls.findIndex((r) => r.method === 'DELETE');
    expect(patch).toBeGreaterThanOrEqual(0);
    expect(del).toBeGreaterThan(patch);
    expect(calls[del]?.query.propagationPolicy).toBe('Background');
    expect(hooks.states(ok.taskId).at(-1)).toBe('finished');

    const bad = task('k8s-keep', 'echo went wrong; exit 5');
    await ex.submit(bad);
    const badRec = await ex.wait(bad.taskId);
    expect(badRec.state).toBe('failed');
    const badH = defined(kubernetesHandle(badRec.handle), 'the failed task handle');
    await until(
      () => annotations(badH.jobName)?.[OUTCOME_ANNOTATION] === 'failed',
      'the failed task Job marked failed',
    );
    expect(Date.parse(annotations(badH.jobName)?.[ENDED_ANNOTATION] ?? '')).toBeGreaterThan(0);
    const sweeps = backend.stats().sweeps ?? 0;
    // The second sweep begins once the first, begun after the mark, is done.
    await until(() => (backend.stats().sweeps ?? 0) >= sweeps + 2, 'two sweeps after the mark');
    // Still within its keep time: the Job and its log stay, to be looked into.
    expect(jobNamed(badH.jobName)).toBeDefined();
    expect(readFileSync(badH.logPath, 'utf8')).toBe('went wrong\n');
    clock.offset = HOUR;
    await until(() => !jobNamed(badH.jobName), 'the failed task Job deleted past its keep time');
    expect(podsOf(badH.jobName)).toEqual([]);
    expect(existsSync(badH.logPath)).toBe(false);
    // Counted once the DELETE's answer is back, after the stand-in dropped the Job (CI saw 1).
    await until(() => backend.stats().jobsRemoved === 2, 'the second removal counted');
    expect(backend.stats()).toMatchObject({ jobsRemoved: 2, marked: 2 });
    expect(kube.api.invalidResponses).toEqual([]);
    await ex.close();
  });

  it("an ended Job never marked (its runner died first) and a gone Job's log go after the failed keep time; other files never", async () => {
    const id = 'k8s-unmarked';
    const { backend, ex, clock } = setup(id, { okMs: 0, failedMs: HOUR });
    // A Job of this resource that ended without the mark, as one whose runner died between
    // recording its task's end and marking it.
    const name = jobNameFor('unmarked');
    const kc = new KubeConfig();
    kc.loadFromFile(kube.kubeconfig);
    await kc.makeApiClient(BatchV1Api).createNamespacedJob({
      namespace: NS,
      body: {
        apiVersion: 'batch/v1',
        kind: 'Job',
        metadata: {
          name,
          labels: { 'app.kubernetes.io/managed-by': 'computepods', 'computepods.io/resource': id },
        },
        spec: {
          backoffLimit: 0,
          template: {
            spec: {
              restartPolicy: 'Never',
              containers: [{ name: 'task', image: 'debian', command: ['/bin/sh', '-c', 'true'] }],
            },
          },
        },
      },
    });
    await until(
      () =>
        ((jobNamed(name)?.status.conditions ?? []) as { type: string }[]).some(
          (c) => c.type === 'Complete',
        ),
      'the unmarked Job complete',
    );
    const jobsDir = tmp.join(`jobs-${id}`);
    const orphan = `${jobNameFor('gone')}.log`;
    writeFileSync(`${jobsDir}/${orphan}`, 'a log whose Job is gone\n');
    writeFileSync(`${jobsDir}/${name}.log`, 'the unmarked Job log\n');
    writeFileSync(`${jobsDir}/${name}.log.tmp`, 'a read cut short\n');
    mkdirSync(`${jobsDir}/${name}.files`);
    writeFileSync(`${jobsDir}/${name}.files/outputs-0`, 'a stage folder left\n');
    writeFileSync(`${jobsDir}/notes.log`, 'not named as a Job\n');
    const old = new Date(Date.now() - 2 * HOUR);
    utimesSync(`${jobsDir}/notes.log`, old, old);
    await ex.adopt([]);
    await backend.sweepNow();
    expect(jobNamed(name)).toBeDefined();
    expect(existsSync(`${jobsDir}/${orphan}`)).toBe(true);
    expect(existsSync(`${jobsDir}/${name}.log`)).toBe(true);
    expect(existsSync(`${jobsDir}/${name}.files/outputs-0`)).toBe(true);
    clock.offset = HOUR;
    await backend.sweepNow();
    expect(jobNamed(name)).toBeUndefined();
    expect(existsSync(`${jobsDir}/${name}.log`)).toBe(false);
    expect(existsSync(`${jobsDir}/${name}.log.tmp`)).toBe(false);
    expect(existsSync(`${jobsDir}/${name}.files`)).toBe(false);
    expect(existsSync(`${jobsDir}/${orphan}`)).toBe(false);
    expect(existsSync(`${jobsDir}/notes.log`)).toBe(true);
    await ex.close();
  });

  it('a Job whose log copy is still being published stays, whatever the keep time', async () => {
    const id = 'k8s-held';
    const unpublished = new Map<string, TaskRecord>();
    const { backend, ex } = setup(id, { okMs: 0, failedMs: 0 }, undefined, () =>
      unpublished.values(),
    );
    await ex.adopt([]);
    const t = task(id, 'echo the last piece');
    await ex.submit(t);
    const rec = await ex.wait(t.taskId);
    expect(rec.state, rec.reason).toBe('finished');
    unpublished.set(t.taskId, rec);
    const h = defined(kubernetesHandle(rec.handle), 'the held task handle');
    await until(
      () => annotations(h.jobName)?.[OUTCOME_ANNOTATION] === 'finished',
      'the held task Job marked finished',
    );
    await backend.sweepNow();
    await backend.sweepNow();
    expect(jobNamed(h.jobName)).toBeDefined();
    expect(readFileSync(h.logPath, 'utf8')).toBe('the last piece\n');
    unpublished.delete(t.taskId);
    await backend.sweepNow();
    expect(jobNamed(h.jobName)).toBeUndefined();
    expect(existsSync(h.logPath)).toBe(false);
    await ex.close();
  });

  it('a Job of a watched task is never planned for removal, however old its end', () => {
    const ended = (name: string, annotations?: Record<string, string>) => ({
      metadata: { name, ...(annotations ? { annotations } : {}) },
      status: {
        conditions: [{ type: 'Complete', status: 'True', lastTransitionTime: new Date(0) }],
      },
    });
    const marked = jobNameFor('marked');
    const watched = jobNameFor('watched');
    const foreign = 'someone-elses-job';
    const plan = planCleanup(
      [
        ended(marked, {
          [ENDED_ANNOTATION]: new Date(0).toISOString(),
          [OUTCOME_ANNOTATION]: 'finished',
        }),
        ended(watched, {
          [ENDED_ANNOTATION]: new Date(0).toISOString(),
          [OUTCOME_ANNOTATION]: 'finished',
        }),
        ended(foreign),
      ],
      [
        { name: `${watched}.log`, mtimeMs: 0 },
        { name: `${marked}.files`, mtimeMs: Date.now() },
      ],
      Date.now(),
      { okMs: 0, failedMs: 0 },
      new Set([watched]),
    );
    expect(plan).toEqual({ jobs: [marked], files: [] });
  });
});

describe('kubernetes cleanup after kill -9 of the runner', { timeout: 180_000 }, () => {
  it('the restarted runner removes the Jobs of tasks that ended, before the restart or while it was down', async () => {
    const id = 'k8s-crash';
    const records = tmp.join('crash-records');
    const gate = tmp.join('crash-gate');
    const mk = (taskId: string, command: string): TaskSubmitted => ({
      taskId,
      resource: id,
      command,
      cwd: tmp.path,
      env: {},
      gpu: false,
    });
    const tasks = [
      mk('ok-before', 'echo ok before'),
      mk('bad-before', 'echo bad before; exit 4'),
      mk('ends-while-down', `while [ ! -e ${gate} ]; do sleep 0.05; done; echo ended`),
    ];
    const runner = (
      mode: 'start' | 'recover',
      keep?: { okMs: number; failedMs: number },
      pollMs?: number,
    ) =>
      crashRunner('k8s-cleanup-runner', mode, {
        CRASH_RECORDS: records,
        CRASH_RESOURCE: JSON.stringify(resourceJson(id)),
        CRASH_PROFILE: JSON.stringify(profile),
        CRASH_TASKS: JSON.stringify(tasks),
        CRASH_READY: 'ok-before:finished,bad-before:failed,ends-while-down:running',
        ...(keep ? { CRASH_KEEP: JSON.stringify(keep) } : {}),
        ...(pollMs ? { CRASH_POLL_MS: String(pollMs) } : {}),
      });
    const byId = () =>
      new Map<string, TaskRecord>(new FileHooks(records).load().map((r) => [r.task.taskId, r]));
    const handle = (taskId: string) =>
      defined(kubernetesHandle(byId().get(taskId)?.handle), `${taskId} handle`);

    // First runner, default keep times (10 minutes, 7 days): its ended Jobs stay.
    const first = runner('start');
    await first.waitForOutput('ready', 60_000);
    await until(
      () =>
        annotations(handle('ok-before').jobName)?.[OUTCOME_ANNOTATION] === 'finished' &&
        annotations(handle('bad-before').jobName)?.[OUTCOME_ANNOTATION] === 'failed',
      'both ended Jobs marked',
      30_000,
      () => first.output,
    );
    await first.kill9();
    const [ok, bad, down] = ['ok-before', 'bad-before', 'ends-while-down'].map(handle);
    if (!ok || !bad || !down) throw new Error('a task without a handle');
    expect(existsSync(ok.logPath)).toBe(true);

    // One Job ends while nobody watches.
    writeFileSync(gate, '');
    await until(
      () =>
        ((jobNamed(down.jobName)?.status.conditions ?? []) as { type: string }[]).some(
          (c) => c.type === 'Complete',
        ),
      'the Job ended while the runner was down',
    );
    // Keep times 0: the Job that ended while the runner was down is ended and not yet marked
    // when the restarted runner's first sweep lists it (its first poll comes 3 s later); only
    // its task being watched (adopted) keeps that sweep from deleting it before its end is
    // recorded.
    const second = runner('recover', { okMs: 0, failedMs: 0 }, 3_000);
    expect(await second.exited()).toBe(0);
    const recs = byId();
    expect(Object.fromEntries([...recs].map(([k, r]) => [k, [r.state, r.exitCode]]))).toEqual({
      'ok-before': ['finished', 0],
      'bad-before': ['failed', 4],
      'ends-while-down': ['finished', 0],
    });
    // Ended before the restart: removed by the restarted runner's first sweep, logs and all.
    for (const h of [ok, bad]) {
      expect(jobNamed(h.jobName)).toBeUndefined();
      expect(existsSync(h.logPath)).toBe(false);
    }

    // Started once more: the Job it collected goes too.
    const third = runner('recover', { okMs: 0, failedMs: 0 });
    expect(await third.exited()).toBe(0);
    expect(jobNamed(down.jobName)).toBeUndefined();
    expect(existsSync(down.logPath)).toBe(false);
    // Deleted once, after the mark that says its end was recorded.
    const downCalls = kube.api.requests.filter((r) => r.path.endsWith(`/jobs/${down.jobName}`));
    expect(downCalls.filter((r) => r.method === 'DELETE').length).toBe(1);
    expect(downCalls.findIndex((r) => r.method === 'DELETE')).toBeGreaterThan(
      downCalls.findIndex((r) => r.method === 'PATCH' && r.status === 200),
    );
    expect(downCalls.findIndex((r) => r.method === 'PATCH' && r.status === 200)).toBeGreaterThan(
      -1,
    );
    expect(
      kube.api.jobs().filter((j) => j.metadata.labels?.['computepods.io/resource'] === id),
    ).toEqual([]);
    expect(kube.api.invalidResponses).toEqual([]);
  });
});
