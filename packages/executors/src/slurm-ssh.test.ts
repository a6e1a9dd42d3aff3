import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import {
  type Profile,
  parseProfile,
  parseResource,
  type Resource,
  type TaskSubmitted,
} from '@computepods/protocol';
import {
  defined,
  makeWheel,
  privateWorkspace,
  reservePort,
  Slurm,
  Sshd,
  shareDirs,
  startTogether,
  TempDir,
  until as waitUntil,
} from '@computepods/testkit';
import { SshPool } from '@computepods/transport';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BackendTuning, createExecutor } from './create-executor.js';
import { slurmHandle } from './handle.js';
import { shq } from './sh-quote.js';
import { RecordingHooks } from './test-hooks.js';
import { slurmResourceFields } from './test-slurm-setup.js';

// A real sshd and a real single-node SLURM, once for the file. The runner (root, here) reaches
// the cluster only as cpuser over SSH; job folders go up and come back by verified SFTP.
let sshd: Sshd;
let slurm: Slurm;
let pool: SshPool;
const tmp = new TempDir('cp-slurm-ssh-');
const remoteJobs = tmp.join('remote-jobs');
const remoteTasks = tmp.join('remote-tasks');
const localJobs = tmp.join('local-jobs');

beforeAll(async () => {
  shareDirs(tmp, [remoteJobs, remoteTasks]);
  [sshd, slurm] = await startTogether([Sshd.start({ users: ['cpuser'] }), Slurm.start()]);
  pool = new SshPool();
});
afterAll(async () => {
  await pool?.close();
  await Promise.allSettled([sshd?.[Symbol.asyncDispose](), slurm?.[Symbol.asyncDispose]()]);
  tmp[Symbol.dispose]();
});

function config(port?: number): { resource: Resource; profile: Profile } {
  const t = sshd.target('cpuser');
  const resource = parseResource({
    type: 'slurm_ssh',
    name: 'Remote SLURM cluster',
    host: t.host,
    port: port ?? t.port,
    ...slurmResourceFields(slurm, {
      jobsDir: localJobs,
      tasksDir: tmp.join('tasks'),
      batching: {
        target_cpus_per_job: 2,
        max_cpus_per_job: 2,
        target_mem_per_job: 200,
        max_mem_per_job: 200,
        target_num_jobs: 1,
        max_num_jobs: 2,
      },
    }),
  });
  const profile = parseProfile({
    name: 'SLURM/SSH profile',
    resource_type: 'slurm_ssh',
    username: t.username,
    ssh_key_path: t.privateKeyPath,
    known_hosts_path: t.knownHostsPath,
    jobs_remote_dir: remoteJobs,
    tasks_remote_dir: remoteTasks,
  });
  return { resource, profile };
}

/**
 * An executor on the cluster through the file's SSH pool, gathering tasks for 100 ms and trying
 * a failed command three times; `tuning` adds to those.
 */
function sshExecutor(hooks = new RecordingHooks(), tuning: BackendTuning = {}) {
  return createExecutor({
    ...config(),
    hooks,
    sshPool: pool,
    backendOptions: {
      batchWindowMs: 100,
      retry: { attempts: 3, baseMs: 100, maxMs: 400 },
      ...tuning,
    },
  });
}

const task = (
  taskId: string,
  command: string,
  extra: Partial<TaskSubmitted> = {},
): TaskSubmitted => ({
  taskId,
  resource: 'remote-slurm-cluster',
  command,
  cwd: remoteTasks,
  env: {},
  gpu: false,
  ...extra,
});

describe('slurm_ssh on a real sshd and SLURM', { timeout: 120000 }, () => {
  it('stages the job by SFTP, runs a batch as the SSH user, and fetches the outputs back', async () => {
    const hooks = new RecordingHooks();
    const ex = sshExecutor(hooks);
    const pwned = tmp.join('pwned');
    const hostile = `$(touch ${pwned}); \`touch ${pwned}\`\n'"`;
    const tasks = [
      task('ssh-1', 'id -un; echo e >&2'),
      task('ssh-2', 'printf %s "$H"; exit 5', { env: { H: hostile } }),
    ];
    for (const t of tasks) await ex.submit(t);
    // while the job runs or right after, logs come from the cluster
    const [a, b] = await Promise.all(tasks.map((t) => ex.wait(t.taskId)));
    expect([a?.state, a?.exitCode, b?.state, b?.exitCode]).toEqual(['finished', 0, 'failed', 5]);
    expect(a?.jobId).toBe(b?.jobId);
    expect(existsSync(pwned)).toBe(false);
    // once every task of the job ended, its folder is fetched, verified, and logs are local
    const end = performance.now() + 30_000;
    while (!slurmHandle(ex.get('ssh-2')?.handle)?.localDir) {
      if (performance.now() > end) throw new Error('job folder was not fetched');
      await new Promise((r) => setTimeout(r, 50));
    }
    const h = defined(
      slurmHandle(defined(ex.get('ssh-2'), "ex.get('ssh-2')").handle),
      "slurmHandle(ex.get('ssh-2').handle)",
    );
    expect(h.localDir).toBe(join(localJobs, h.jobKey));
    expect(readFileSync(join(defined(h.localDir, 'h.localDir'), `${h.index}.out`), 'utf8')).toBe(
      hostile,
    );
    expect(readFileSync(join(defined(h.localDir, 'h.localDir'), `${h.index}.exit`), 'utf8')).toBe(
      '5\n',
    );
    expect(await ex.logs('ssh-1')).toBe('cpuser\n');
    expect(await ex.logs('ssh-1', 'stderr')).toBe('e\n');
    expect(await ex.logs('ssh-2')).toBe(hostile);
    expect(ex.stats().sbatch).toBe(1);
    expect(hooks.recordedBeforePublished()).toBe(true);
    await ex.close();
  });

  it('sweeps a finished job folder off the cluster and its local copy once its keep time passed', async () => {
    const ex = sshExecutor(undefined, { keep: { okMs: 0, failedMs: 3_600_000 } });
    const t = task('ssh-swept', 'echo swept');
    await ex.submit(t);
    expect((await ex.wait(t.taskId)).state).toBe('finished');
    await waitUntil(
      () => slurmHandle(ex.get(t.taskId)?.handle)?.localDir !== undefined,
      'fetched',
      30_000,
    );
    const h = defined(
      slurmHandle(defined(ex.get(t.taskId), 'ex.get(t.taskId)').handle),
      'slurmHandle(ex.get(t.taskId).handle)',
    );
    expect(existsSync(h.dir) && existsSync(defined(h.localDir, 'h.localDir'))).toBe(true);
    await ex.adopt([]); // as a runner start does: a sweep follows at once
    await waitUntil(
      () => !existsSync(h.dir) && !existsSync(defined(h.localDir, 'h.localDir')),
      'both swept',
      30_000,
    );
    await ex.close();
  });

  it('stages declared inputs into the job folder and brings declared outputs back verified', async () => {
    const hooks = new RecordingHooks();
    const ex = sshExecutor(hooks);
    // The pod's workspace: root's, not readable by cpuser, never seen by the job.
    const { path: ws, odd } = privateWorkspace(tmp.join('ws-ssh'));
    const files = (inputs: string[], outputs: string[]) => ({ inputs, outputs });
    const tasks = [
      task('files-escape', 'true', { cwd: ws, files: files(['src/escape'], ['out/x']) }),
      task(
        'files-ok',
        `tr a-z A-Z < ${shq(odd)} > out/up.txt && cat src/bin > out/deep/bin && id -un > out/who`,
        { cwd: ws, files: files([odd, 'src/bin'], ['out/up.txt', 'out/deep/bin', 'out/who']) },
      ),
      task('files-missing', 'true', { cwd: ws, files: files(['src/bin'], ['out/never']) }),
    ];
    for (const t of tasks) await ex.submit(t);
    const [outside, ok, missing] = await Promise.all(tasks.map((t) => ex.wait(t.taskId)));
    expect(ok?.state, ok?.reason).toBe('finished');
    expect(readFileSync(join(ws, 'out/up.txt'), 'utf8')).toBe('HELLO\n');
    expect(readFileSync(join(ws, 'out/deep/bin'))).toEqual(Buffer.from([0, 1, 2, 255, 10]));
    expect(readFileSync(join(ws, 'out/who'), 'utf8')).toBe('cpuser\n');
    expect(missing).toMatchObject({ state: 'failed', exitCode: 0 });
    expect(missing?.reason).toMatch(/declared output out\/never was not written by the command/);
    expect(existsSync(join(ws, 'out/never'))).toBe(false);
    expect(outside?.state).toBe('failed');
    expect(outside?.reason).toMatch(/files\.inputs "src\/escape": a symlink leading outside/);
    expect(existsSync(join(ws, 'PWN'))).toBe(false);
    // the refused task was batched with a good one, which ran all the same
    expect(slurmHandle(defined(outside, 'outside').handle)?.jobKey).toBe(
      slurmHandle(defined(ok, 'ok').handle)?.jobKey,
    );
    // the job ran in its own folder on the cluster, with copies of the inputs
    const h = defined(slurmHandle(defined(ok, 'ok').handle), 'slurmHandle(ok.handle)');
    expect(readFileSync(join(h.dir, `${h.index}.work`, odd), 'utf8')).toBe('hello\n');
    // and its folder comes back with logs and exit codes, not the work folders' copies
    const end = performance.now() + 30_000;
    while (!slurmHandle(ex.get('files-ok')?.handle)?.localDir) {
      if (performance.now() > end) throw new Error('job folder was not fetched');
      await new Promise((r) => setTimeout(r, 50));
    }
    const localDir = defined(
      defined(
        slurmHandle(defined(ex.get('files-ok'), "ex.get('files-ok')").handle),
        "slurmHandle(ex.get('files-ok').handle)",
      ).localDir,
      "slurmHandle(ex.get('files-ok').handle).localDir",
    );
    expect(readFileSync(join(localDir, `${h.index}.exit`), 'utf8')).toBe('0\n');
    expect(existsSync(join(localDir, `${h.index}.work`))).toBe(false);
    await ex.close();
  });

  it('pauses tasks with the reason when the cluster cannot be reached, after retries', async () => {
    // Nothing listens on it for the whole case: reserved, so no other test file's server takes it.
    using closed = reservePort();
    const closedPort = closed.port;
    const hooks = new RecordingHooks();
    const own = new SshPool({ connectRetries: 0, connectTimeoutMs: 2_000 });
    const ex = createExecutor({
      ...config(closedPort),
      hooks,
      sshPool: own,
      backendOptions: { batchWindowMs: 50, retry: { attempts: 2, baseMs: 50, maxMs: 100 } },
    });
    await ex.submit(task('ssh-unreachable', 'true'));
    const end = performance.now() + 30_000;
    while (ex.get('ssh-unreachable')?.state !== 'paused') {
      if (performance.now() > end) throw new Error('task was not paused');
      await new Promise((r) => setTimeout(r, 50));
    }
    const rec = defined(ex.get('ssh-unreachable'), "ex.get('ssh-unreachable')");
    expect(rec.pausedFrom).toBe('submitted');
    expect(rec.reason).toMatch(
      /paused after retries; resume the task once the resource is reachable again/,
    );
    expect(rec.reason).toMatch(/refused|connect/i);
    expect(hooks.states('ssh-unreachable')).toEqual(['created', 'submitted', 'paused']);
    await ex.close();
    await own.close();
  });

  it('makes a task environment on the cluster as the SSH user, once, and runs tasks in it', async () => {
    // Made by the task where it runs, below tasks_remote_dir, as cpuser; pip finds the package
    // in a folder of this test (no network).
    const wheels = tmp.join('wheels');
    mkdirSync(wheels, { recursive: true });
    chmodSync(wheels, 0o1777);
    await makeWheel(wheels, 'cpssh', '1.0', {
      '__init__.py': 'def greet():\n    return "hi over ssh"\n',
    });
    const ex = sshExecutor();
    const env = { PIP_NO_INDEX: '1', PIP_FIND_LINKS: wheels, PIP_NO_CACHE_DIR: '1' };
    const environment = { requirements: ['cpssh==1.0'] };
    const run = 'python -c "import cpssh; print(cpssh.greet())"; id -un';
    const first = task('ssh-env-1', run, { env, environment });
    await ex.submit(first);
    const f = await ex.wait(first.taskId);
    expect(f.state, `${f.reason}\n${await ex.logs(first.taskId, 'stderr')}`).toBe('finished');
    expect(await ex.logs(first.taskId)).toBe('hi over ssh\ncpuser\n');
    expect(await ex.logs(first.taskId, 'stderr')).toMatch(/making the task environment/);
    const second = task('ssh-env-2', run, { env, environment });
    await ex.submit(second);
    const s2 = await ex.wait(second.taskId);
    expect(s2.state, s2.reason).toBe('finished');
    expect(await ex.logs(second.taskId, 'stderr')).not.toMatch(/making the task environment/);
    const envs = readdirSync(join(remoteTasks, 'envs')).filter((d) => !d.endsWith('.lock'));
    expect(envs).toHaveLength(1);
    const [made] = envs;
    expect(statSync(join(remoteTasks, 'envs', made ?? '')).uid).not.toBe(process.getuid?.());
    await ex.close();
  });
});
