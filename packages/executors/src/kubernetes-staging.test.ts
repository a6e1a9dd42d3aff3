import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type ServerResponse } from 'node:http';
import { request } from 'node:https';
import { type AddressInfo, connect } from 'node:net';
import type { TaskSubmitted } from '@computepods/protocol';
import {
  defined,
  type ManagedProcess,
  makeTestCa,
  makeTestCertificate,
  privateWorkspace,
  reservePort,
  TempDir,
  until,
} from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Executor } from './executor.js';
import { crashRunner } from './test-crash-runner.js';
import { FileHooks } from './test-file-hooks.js';
import { kubeExecutor, kubeProfile, type TestKubeApi, testKubeApi } from './test-kube-setup.js';

/*
 * Kubernetes staging against KubeApi, the test kit's STAND-IN for an API server, with
 * isolatePods: each container runs in its own mount namespace and root file system (this
 * machine's system folders read-only, the pod's emptyDir, nothing else), so the pod cannot see
 * the workspace at all; its inputs reach it only through the runner's stage server (HTTPS,
 * curl in the init container) and its outputs come back the same way.
 */

const NS = 'cp-stage';
const tmp = new TempDir('cp-k8s-stage-');
const kube = testKubeApi(tmp, { namespace: NS, isolatePods: true });
let ws: ReturnType<typeof privateWorkspace>;
let tls: { certFile: string; keyFile: string; caFile: string };
const big = randomBytes(700_000);
const executors: Executor[] = [];

beforeAll(() => {
  ws = privateWorkspace(tmp.join('ws'));
  writeFileSync(tmp.join('ws/src/big.bin'), big);
  writeFileSync(tmp.join('ws/in.txt'), 'abc\n');
  const ca = makeTestCa(tmp.join('ca'), 'cp-stage-ca');
  const cert = makeTestCertificate(ca, tmp.join('ca'), '127.0.0.1');
  tls = { certFile: cert.cert, keyFile: cert.key, caFile: ca.ca };
});
afterAll(async () => {
  for (const ex of executors) await ex.close();
});

const resourceJson = () =>
  kube.resourceJson({ id: 'k8s', name: 'Kubernetes', jobsDir: tmp.join('jobs') });
const profile = kubeProfile('cp');

function setup() {
  const { hooks, ex } = kubeExecutor(resourceJson(), profile, 'team-a', {
    kubernetesStaging: { host: '127.0.0.1', port: 0, ...tls },
  });
  executors.push(ex);
  return { hooks, ex };
}

let n = 0;
function task(command: string, files: TaskSubmitted['files']): TaskSubmitted {
  n++;
  return {
    taskId: `s${n}-${process.pid}`,
    resource: 'k8s',
    command,
    cwd: ws.path,
    env: {},
    gpu: false,
    files,
  };
}

function envOf(job: ReturnType<TestKubeApi['jobOf']>): Record<string, string> {
  const spec = defined(job).spec as {
    template: { spec: { containers: { env: { name: string; value: string }[] }[] } };
  };
  const c = defined(spec.template.spec.containers[0]);
  return Object.fromEntries(c.env.map((e) => [e.name, e.value]));
}

describe('kubernetes staging (stand-in with isolated pods)', { timeout: 90_000 }, () => {
  it('inputs only in the workspace reach a pod that cannot see it; outputs come back byte-exact', async () => {
    const { ex, hooks } = setup();
    const t = task(
      [
        // The pod sees none of this machine's folders but its own: not the workspace.
        `if [ -e ${JSON.stringify(ws.path)} ]; then echo 'the pod sees the workspace'; exit 9; fi`,
        'mkdir -p out',
        `tr a-z A-Z < 'src/a b;$(touch PWN)'"'"'.txt' > out/upper.txt`,
        'cat src/bin src/big.bin > out/both.bin',
        // Kubernetes expands $(NAME) of a variable the container defines, and turns $$ into $.
        `printf '%s %s %s' '$(HOME)' '$$' '$(COMPUTEPODS_JOB)' > out/dollars.txt`,
        'echo "ran in $(pwd)" | tee run.log',
      ].join('\n'),
      {
        inputs: [ws.odd, 'src/bin', 'src/big.bin'],
        outputs: ['out/upper.txt', 'out/both.bin', 'out/dollars.txt'],
        auxiliaries: ['run.log', 'never.blg'],
      },
    );
    await ex.submit(t);
    const rec = await ex.wait(t.taskId);
    expect(rec.state, rec.reason).toBe('finished');
    expect(readFileSync(tmp.join('ws/out/upper.txt'), 'utf8')).toBe('HELLO\n');
    expect(readFileSync(tmp.join('ws/out/both.bin')).equals(Buffer.concat([ws.binary, big]))).toBe(
      true,
    );
    expect(readFileSync(tmp.join('ws/out/dollars.txt'), 'utf8')).toBe(
      '$(HOME) $$ $(COMPUTEPODS_JOB)',
    );
    expect(readFileSync(tmp.join('ws/run.log'), 'utf8')).toBe('ran in /computepods/work\n');
    expect(existsSync(tmp.join('ws/never.blg'))).toBe(false);
    expect(existsSync(tmp.join('ws/PWN'))).toBe(false);
    expect(await ex.logs(t.taskId)).toBe('ran in /computepods/work\n');
    // The pod ran with an init container and an emptyDir; the token is in the Job, never in the record.
    const job = kube.jobOf(ex, t.taskId);
    const spec = defined(job).spec as {
      template: { spec: { initContainers: { name: string }[]; volumes: unknown[] } };
    };
    expect(spec.template.spec.initContainers.map((c) => c.name)).toEqual(['stage-in']);
    expect(spec.template.spec.volumes).toEqual([{ name: 'computepods-stage', emptyDir: {} }]);
    const token = defined(envOf(job).COMPUTEPODS_STAGE_TOKEN);
    expect(token).toMatch(/^[0-9a-f]{64}$/);
    expect(JSON.stringify([...hooks.records.values()])).not.toContain(token);
    // What the pod sent is gone from the jobs folder once collected.
    expect(readdirSync(tmp.join('jobs')).filter((f) => f.endsWith('.files'))).toEqual([]);
    expect(kube.api.invalidResponses).toEqual([]);
  });

  it('a failing fetch fails the task before the command runs, saying which input and why', async () => {
    const { ex } = setup();
    writeFileSync(tmp.join('ws/gone.txt'), 'here at submit\n');
    kube.api.startPods = false;
    const t = task('cat gone.txt > copy.txt; touch ran', {
      inputs: ['gone.txt'],
      outputs: ['copy.txt'],
    });
    try {
      await ex.submit(t);
      await until(() => kube.jobOf(ex, t.taskId) !== undefined, 'the Job to be created');
      // Hashed and listed in the Job at submit; removed before the pod fetches it.
      rmSync(tmp.join('ws/gone.txt'));
    } finally {
      kube.api.releasePods();
    }
    const rec = await ex.wait(t.taskId);
    expect(rec.state).toBe('failed');
    expect(rec.exitCode).toBeNull();
    expect(rec.reason).toMatch(
      /could not stage the task's declared inputs into its pod: init container stage-in of pod .* exited 1: .*gone\.txt.*missing in .*could not fetch declared input gone\.txt from the runner/,
    );
    expect(existsSync(tmp.join('ws/copy.txt'))).toBe(false);
    // The failed pod (its init container ended, its container never started) is schema-valid.
    expect(kube.api.invalidResponses).toEqual([]);
  });

  it('an input changed after submit is refused by its SHA-256; a missing output or a failure says so', async () => {
    const { ex } = setup();
    kube.api.startPods = false;
    const changed = task('cat in.txt > c.txt', { inputs: ['in.txt'], outputs: ['c.txt'] });
    try {
      await ex.submit(changed);
      await until(() => kube.jobOf(ex, changed.taskId) !== undefined, 'the Job');
      writeFileSync(tmp.join('ws/in.txt'), 'changed\n');
    } finally {
      kube.api.releasePods();
    }
    const r0 = await ex.wait(changed.taskId);
    expect(r0.reason).toMatch(/declared input in\.txt arrived with SHA-256 [0-9a-f]{64}, not the/);

    const lazy = task('true', { inputs: [], outputs: ['never.txt'] });
    await ex.submit(lazy);
    const r1 = await ex.wait(lazy.taskId);
    expect(r1.state).toBe('failed');
    expect(r1.exitCode).toBe(0);
    expect(r1.reason).toMatch(/declared output never\.txt was not written by the command/);

    // A failed command sends back its auxiliaries only: its .log says why; outputs stay as they were.
    writeFileSync(tmp.join('ws/kept.txt'), 'before\n');
    const failing = task('echo after > kept.txt; echo why > fail.log; exit 3', {
      inputs: [],
      outputs: ['kept.txt'],
      auxiliaries: ['fail.log'],
    });
    await ex.submit(failing);
    const r2 = await ex.wait(failing.taskId);
    expect(r2.state).toBe('failed');
    expect(r2.exitCode).toBe(3);
    expect(readFileSync(tmp.join('ws/fail.log'), 'utf8')).toBe('why\n');
    expect(readFileSync(tmp.join('ws/kept.txt'), 'utf8')).toBe('before\n');
  });

  it('the stage server refuses a wrong token and serves nothing of an ended task', async () => {
    const { ex } = setup();
    const t = task('cat in.txt > d.txt', { inputs: ['in.txt'], outputs: ['d.txt'] });
    await ex.submit(t);
    const rec = await ex.wait(t.taskId);
    expect(rec.state, rec.reason).toBe('finished');
    const env = envOf(kube.jobOf(ex, t.taskId));
    const url = `${env.COMPUTEPODS_STAGE_URL}/v1/jobs/${env.COMPUTEPODS_JOB}/inputs/0`;
    const ca = readFileSync(tls.caFile);
    expect(await get(url, ca, 'f'.repeat(64))).toMatchObject({ status: 401 });
    const ended = await get(url, ca, defined(env.COMPUTEPODS_STAGE_TOKEN));
    expect(ended.status).toBe(404);
    expect(ended.body).toMatch(/has no live task on this runner/);
  });
});

describe('kubernetes staging survives kill -9 of the runner', { timeout: 120_000 }, () => {
  it('a runner killed while a staged pod runs: the restarted one takes its outputs', async () => {
    // Kept across the runner's restart (the restarted one listens on it again): reserved outside
    // the kernel's ephemeral range, which another test file's bind(0) could take it from meanwhile.
    using reserved = reservePort();
    const port = reserved.port;
    const records = tmp.join('crash-records');
    // The pod waits for this answer (it sees no file of this machine): the test lets it go on.
    const held: ServerResponse[] = [];
    const gate = createServer((_req, res) => held.push(res));
    await new Promise<void>((r) => gate.listen(0, '127.0.0.1', () => r()));
    const gateUrl = `http://127.0.0.1:${(gate.address() as AddressInfo).port}/`;
    writeFileSync(tmp.join('ws/crash-in.txt'), 'survives\n');
    const t: TaskSubmitted = {
      taskId: 'crash-staged',
      resource: 'k8s',
      command: `curl -s ${gateUrl} > /dev/null; tr a-z A-Z < crash-in.txt > crash-out.txt`,
      cwd: ws.path,
      env: {},
      gpu: false,
      files: { inputs: ['crash-in.txt'], outputs: ['crash-out.txt'], auxiliaries: [] },
    };
    const runner = (mode: 'start' | 'recover') =>
      crashRunner('k8s-stage-runner', mode, {
        CRASH_RECORDS: records,
        CRASH_RESOURCE: JSON.stringify(resourceJson()),
        CRASH_PROFILE: JSON.stringify(profile),
        CRASH_TASKS: JSON.stringify([t]),
        CRASH_READY: 'crash-staged:running',
        CRASH_K8S_STAGING: JSON.stringify({ host: '127.0.0.1', port, ...tls }),
      });
    const first = runner('start');
    let second: ManagedProcess | undefined;
    try {
      await first.waitForOutput('ready', 60_000);
      await until(() => held.length > 0, 'the pod waiting at the gate');
      await first.kill9();
      // The restarted runner serves staging on the same port with the same key (jobs folder).
      second = runner('recover');
      await until(() => accepts(port), "the restarted runner's stage server", 60_000);
      for (const res of held.splice(0)) res.end('go');
      await second.waitForOutput('done', 60_000);
      const rec = new FileHooks(records).load().find((r) => r.task.taskId === t.taskId);
      expect(rec?.state, rec?.reason).toBe('finished');
      expect(readFileSync(tmp.join('ws/crash-out.txt'), 'utf8')).toBe('SURVIVES\n');
      expect(kube.api.invalidResponses).toEqual([]);
    } finally {
      for (const res of held) res.end();
      gate.close();
      await first.stop();
      await second?.stop();
    }
  });
});

/** True when something accepts TCP connections on 127.0.0.1:port. */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

function get(url: string, ca: Buffer, token: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { ca, headers: { authorization: `Bearer ${token}` } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }),
      );
    });
    req.on('error', reject);
    req.end();
  });
}
