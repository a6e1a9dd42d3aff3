import {
  chmodSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  parseResource,
  type SlurmSudoResource,
  type TaskRecord,
  type TaskSubmitted,
} from '@computepods/protocol';
import {
  defined,
  ensureSystemUser,
  makeWheel,
  openFolders,
  Slurm,
  shareDirs,
  TempDir,
  until as waitUntil,
} from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UnsafeValueError } from './errors.js';
import { isTerminal } from './lifecycle.js';
import { shq } from './sh-quote.js';
import type { SlurmBackendOptions } from './slurm-backend.js';
import type { JobTree } from './slurm-files.js';
import type { HostResult, SlurmHost } from './slurm-host.js';
import { SudoHost } from './sudo-host.js';
import { crashRunner } from './test-crash-runner.js';
import { FileHooks } from './test-file-hooks.js';
import { slurmResourceFields, sudoSlurmExecutor } from './test-slurm-setup.js';

// One real single-node SLURM for the file; cpuser runs the jobs through `sudo -n -u cpuser`.
const USER = 'cpuser';
let slurm: Slurm;
const tmp = new TempDir('cp-slurm-sudo-');
const jobsDir = tmp.join('jobs');
const workDir = tmp.join('work');

beforeAll(async () => {
  ensureSystemUser(USER);
  shareDirs(tmp, [jobsDir, workDir]);
  slurm = await Slurm.start();
});
afterAll(async () => {
  await slurm?.[Symbol.asyncDispose]();
  tmp[Symbol.dispose]();
});

function resource(extra: Record<string, unknown> = {}): SlurmSudoResource {
  return parseResource({
    type: 'slurm_sudo',
    name: 'SLURM cluster',
    ...slurmResourceFields(slurm, {
      jobsDir,
      tasksDir: tmp.join('tasks'),
      runnerConfig: { user_local_exports: { CP_CACHE: 'cache' } },
      batching: {
        target_cpus_per_job: 2,
        max_cpus_per_job: 2,
        target_mem_per_job: 500,
        max_mem_per_job: 500,
        target_num_jobs: 4,
        max_num_jobs: 4,
      },
    }),
    ...extra,
  }) as SlurmSudoResource;
}

/** A SudoHost whose chosen commands fail for a while, as a busy controller would. */
class FlakyHost implements SlurmHost {
  failures = 0;
  readonly label: string;
  constructor(
    readonly inner: SlurmHost,
    readonly failing: (argv: readonly string[]) => boolean,
  ) {
    this.label = inner.label;
  }
  async slurm(argv: readonly string[]): Promise<HostResult> {
    if (this.failing(argv)) {
      this.failures++;
      return {
        code: 1,
        stdout: '',
        stderr: 'squeue: error: Socket timed out on send/recv operation',
      };
    }
    return this.inner.slurm(argv);
  }
  run(argv: readonly string[], input?: string) {
    return this.inner.run(argv, input);
  }
  stageJob(dir: string, files: Readonly<Record<string, string>>, tree?: JobTree) {
    return this.inner.stageJob(dir, files, tree);
  }
  fetchJob(dir: string, key: string) {
    return this.inner.fetchJob(dir, key);
  }
  fetchFile(path: string, localPath: string) {
    return this.inner.fetchFile(path, localPath);
  }
  close() {
    return this.inner.close();
  }
}

/** A host whose output fetches fail as a dropped connection does, while `down` is set. */
class FetchFailingHost extends FlakyHost {
  down = true;
  fetchFailures = 0;
  override async fetchFile(path: string, localPath: string) {
    if (this.down) {
      this.fetchFailures++;
      throw Object.assign(new Error('Connection reset while reading the output'), {
        code: 'ECONNRESET',
      });
    }
    return super.fetchFile(path, localPath);
  }
}

/** A host whose job staging waits until the test opens it: a launch held half-way. */
class GatedStageHost extends FlakyHost {
  staging = 0;
  #open!: () => void;
  readonly opened = new Promise<void>((r) => {
    this.#open = r;
  });
  open(): void {
    this.#open();
  }
  override async stageJob(dir: string, files: Readonly<Record<string, string>>, tree?: JobTree) {
    this.staging++;
    await this.opened;
    return super.stageJob(dir, files, tree);
  }
}

function setup(
  host?: (inner: SlurmHost) => SlurmHost,
  extra: Record<string, unknown> = {},
  tune: Partial<SlurmBackendOptions> = {},
) {
  return sudoSlurmExecutor(resource(extra), {
    user: USER,
    cwd: workDir,
    wrap: host,
    options: { retry: { attempts: 3, baseMs: 100, maxMs: 400 }, ...tune },
  });
}

let n = 0;
function task(command: string, extra: Partial<TaskSubmitted> = {}): TaskSubmitted {
  n++;
  return {
    taskId: `s${n}`,
    resource: 'slurm-cluster',
    command,
    cwd: workDir,
    env: {},
    gpu: false,
    ...extra,
  };
}

const until = (cond: () => boolean | Promise<boolean>, what: string, ms = 90_000) =>
  waitUntil(cond, what, ms, () => slurm.output.slice(-2000));

describe('slurm_sudo on a real SLURM', { timeout: 120000 }, () => {
  it('stages declared inputs as the job user and brings declared outputs back into a workspace that user cannot enter', async () => {
    const { ex } = setup();
    const ws = tmp.join('ws-sudo');
    mkdirSync(join(ws, 'src'), { recursive: true });
    chmodSync(ws, 0o700);
    const odd = "src/t;$(touch PWN) 'q'.txt";
    writeFileSync(join(ws, odd), 'abc\n');
    writeFileSync(join(ws, 'src/bin'), Buffer.from([0, 255, 10, 13]));
    const files = (inputs: string[], outputs: string[]) => ({ inputs, outputs });
    const tasks = [
      task(`tr a-z A-Z < ${shq(odd)} > out/up && cat src/bin > out/d/bin && id -un > out/who`, {
        cwd: ws,
        files: files([odd, 'src/bin'], ['out/up', 'out/d/bin', 'out/who']),
      }),
      task('true', { cwd: ws, files: files([], ['out/none']) }),
      task('true', { cwd: ws, files: files(['src/gone'], ['out/x']) }),
    ];
    await Promise.all(tasks.map((t) => ex.submit(t)));
    const [ok, missing, gone] = await Promise.all(tasks.map((t) => ex.wait(t.taskId)));
    expect(ok?.state, ok?.reason).toBe('finished');
    expect(readFileSync(join(ws, 'out/up'), 'utf8')).toBe('ABC\n');
    expect(readFileSync(join(ws, 'out/d/bin'))).toEqual(Buffer.from([0, 255, 10, 13]));
    expect(readFileSync(join(ws, 'out/who'), 'utf8')).toBe(`${USER}\n`);
    expect(statSync(join(ws, 'out/up')).uid).toBe(process.getuid?.());
    expect(missing).toMatchObject({ state: 'failed', exitCode: 0 });
    expect(missing?.reason).toMatch(/declared output out\/none was not written by the command/);
    expect(gone?.state).toBe('failed');
    expect(gone?.reason).toMatch(/files\.inputs "src\/gone": missing/);
    expect(existsSync(join(ws, 'PWN'))).toBe(false);
    await ex.close();
  });

  it('brings back the auxiliaries a job wrote, after a success and after a failure, and never requires one', async () => {
    const { ex } = setup();
    const ws = tmp.join('ws-aux');
    mkdirSync(join(ws, 'src'), { recursive: true });
    writeFileSync(join(ws, 'src/p.tex'), 'tex\n');
    const files = {
      inputs: ['src/p.tex'],
      outputs: ['out/p.pdf'],
      auxiliaries: ['out/p.log', 'out/p.blg'],
    };
    const ok = task('cat src/p.tex > out/p.pdf; echo ran ok > out/p.log', { cwd: ws, files });
    const failing = task('echo why it failed > log/f.log; exit 2', {
      cwd: ws,
      files: { inputs: [], outputs: ['out/f.pdf'], auxiliaries: ['log/f.log'] },
    });
    await Promise.all([ex.submit(ok), ex.submit(failing)]);
    const [o, f] = await Promise.all([ex.wait(ok.taskId), ex.wait(failing.taskId)]);
    expect(o.state, o.reason).toBe('finished');
    expect(readFileSync(join(ws, 'out/p.pdf'), 'utf8')).toBe('tex\n');
    expect(readFileSync(join(ws, 'out/p.log'), 'utf8')).toBe('ran ok\n');
    expect(existsSync(join(ws, 'out/p.blg'))).toBe(false); // not written: not looked for further
    expect(f).toMatchObject({ state: 'failed', exitCode: 2 });
    expect(readFileSync(join(ws, 'log/f.log'), 'utf8')).toBe('why it failed\n');
    await ex.close();
  });

  it('runs a batch of tasks as the profile user in few jobs, each with its own exit code, log and timeout', async () => {
    const { ex, hooks, backend } = setup();
    const pwned = tmp.join('pwned');
    const hostile = `$(touch ${pwned}) \`touch ${pwned}\`; touch ${pwned}\n'"`;
    const hostileCwd = tmp.join("cwd $(touch x-pwned);`touch x-pwned` 'q'");
    mkdirSync(hostileCwd);
    chmodSync(hostileCwd, 0o1777);
    const tasks = [
      task('id -un; echo to-err >&2'),
      task('exit 3'),
      task('printf %s "$H"', { env: { H: hostile } }),
      task('pwd; printf %s "$CP_CACHE"', { cwd: hostileCwd }),
      task('sleep 120', { timeoutMs: 500 }),
    ];
    await Promise.all(tasks.map((t) => ex.submit(t)));
    const done = await Promise.all(tasks.map((t) => ex.wait(t.taskId)));
    expect(done.map((d) => [d.state, d.exitCode])).toEqual([
      ['finished', 0],
      ['failed', 3],
      ['finished', 0],
      ['finished', 0],
      ['failed', null],
    ]);
    expect(defined(done[4], 'done[4]').reason).toBe('timed out after 500 ms');
    expect(await ex.logs(defined(tasks[0], 'tasks[0]').taskId)).toBe(`${USER}\n`);
    expect(await ex.logs(defined(tasks[0], 'tasks[0]').taskId, 'stderr')).toBe('to-err\n');
    expect(await ex.logs(defined(tasks[2], 'tasks[2]').taskId)).toBe(hostile);
    expect(await ex.logs(defined(tasks[3], 'tasks[3]').taskId)).toBe(
      `${hostileCwd}\n${tmp.join('tasks', 'cache')}`,
    );
    expect(existsSync(pwned)).toBe(false);
    for (const d of [workDir, hostileCwd, tmp.path]) expect(existsSync(`${d}/x-pwned`)).toBe(false);
    // 5 tasks, 2 CPUs and 500 MB per job at most → 3 jobs (2 + 2 + 1), not 5
    const stats = backend.stats();
    expect(stats.sbatch).toBe(3);
    expect(new Set(done.map((d) => d.jobId)).size).toBe(3);
    expect(hooks.recordedBeforePublished()).toBe(true);
    for (const d of done) expect(defined(d.history[0], 'd.history[0]').state).toBe('created');
    await ex.close();
  });

  it('kills one task of a batch (the others finish) and scancels a job with nothing else to run', async () => {
    const { ex, backend } = setup();
    const gate = tmp.join('gate-kill');
    const long = task('sleep 120');
    const other = task(`while [ ! -e ${gate} ]; do sleep 0.1; done; echo other`);
    await ex.submit(long);
    await ex.submit(other);
    await until(() => ex.get(long.taskId)?.state === 'running', 'the long task to run');
    expect(ex.get(long.taskId)?.jobId).toBe(ex.get(other.taskId)?.jobId);
    expect((await ex.kill(long.taskId)).state).toBe('killed');
    writeFileSync(gate, '');
    const o = await ex.wait(other.taskId);
    expect(o).toMatchObject({ state: 'finished', exitCode: 0 });
    expect(await ex.logs(other.taskId)).toBe('other\n');
    const jobId = defined(
      defined(ex.get(long.taskId), 'ex.get(long.taskId)').jobId,
      'ex.get(long.taskId).jobId',
    );
    // the kill marker stopped the task: its exit file shows SIGTERM
    await until(async () => (await slurm.showJob(jobId)).JobState === 'COMPLETED', 'job end');
    const sole = task('sleep 120');
    await ex.submit(sole);
    await until(() => ex.get(sole.taskId)?.state === 'running', 'the sole task to run');
    await ex.kill(sole.taskId);
    const soleJob = defined(
      defined(ex.get(sole.taskId), 'ex.get(sole.taskId)').jobId,
      'ex.get(sole.taskId).jobId',
    );
    expect((await slurm.waitForJob(soleJob)).JobState).toBe('CANCELLED');
    expect(backend.stats().scancel).toBe(1);
    expect(ex.get(sole.taskId)?.state).toBe('killed');
    await ex.close();
  });

  it('holds a pending job on pause and releases it on resume', async () => {
    const { ex } = setup(undefined, {});
    const gate = tmp.join('gate-hold');
    // Two 1-CPU tasks fill the 2-CPU node in one job; the third has to wait in its own job.
    const fillers = [0, 1].map(() => task(`while [ ! -e ${gate} ]; do sleep 0.1; done`));
    for (const f of fillers) await ex.submit(f);
    await until(() => fillers.every((f) => ex.get(f.taskId)?.state === 'running'), 'fillers');
    const waiting = task('echo resumed');
    await ex.submit(waiting);
    await until(() => ex.get(waiting.taskId)?.jobId !== undefined, 'waiting to be submitted');
    const paused = await ex.pause(waiting.taskId);
    expect(paused).toMatchObject({ state: 'paused', pausedFrom: 'submitted' });
    const jobId = defined(paused.jobId, 'paused.jobId');
    await until(async () => (await slurm.showJob(jobId)).Reason === 'JobHeldUser', 'the hold');
    writeFileSync(gate, '');
    await Promise.all(fillers.map((f) => ex.wait(f.taskId)));
    await sleep(1_000);
    expect((await slurm.showJob(jobId)).JobState).toBe('PENDING');
    expect(ex.get(waiting.taskId)?.state).toBe('paused');
    expect((await ex.resume(waiting.taskId)).state).toBe('submitted');
    const done = await ex.wait(waiting.taskId);
    expect(done).toMatchObject({ state: 'finished', jobId });
    expect(await ex.logs(waiting.taskId)).toBe('resumed\n');
    await ex.close();
  });

  it('keeps polling through squeue failures, never calling a task done, then pauses it with the reason', async () => {
    let failSqueue = false;
    const { ex, host } = setup(
      (inner) => new FlakyHost(inner, (argv) => failSqueue && argv[0] === 'squeue'),
    );
    const gate = tmp.join('gate-flaky');
    const t = task(`while [ ! -e ${gate} ]; do sleep 0.1; done; echo survived`);
    await ex.submit(t);
    await until(() => ex.get(t.taskId)?.state === 'running', 'running');
    failSqueue = true;
    writeFileSync(gate, '');
    const jobId = defined(
      defined(ex.get(t.taskId), 'ex.get(t.taskId)').jobId,
      'ex.get(t.taskId).jobId',
    );
    await slurm.waitForJob(jobId);
    // the job is over, but squeue keeps failing: paused (after the retries), not finished
    await until(() => ex.get(t.taskId)?.state === 'paused', 'the pause');
    const rec = ex.get(t.taskId) as TaskRecord;
    expect(rec.pausedFrom).toBe('running');
    expect(rec.reason).toMatch(/Socket timed out.*paused after retries; resume the task/s);
    expect((host as FlakyHost).failures).toBeGreaterThanOrEqual(3);
    failSqueue = false;
    await ex.resume(t.taskId);
    const done = await ex.wait(t.taskId);
    expect(done).toMatchObject({ state: 'finished', exitCode: 0 });
    expect(done.history.map((h) => h.state)).toEqual([
      'created',
      'submitted',
      'running',
      'paused',
      'running',
      'finished',
    ]);
    await ex.close();
  });

  it('pauses a task whose outputs cannot be brought back within the retries, and collects them on resume', async () => {
    const { ex, host } = setup((inner) => new FetchFailingHost(inner, () => false));
    const h = host as FetchFailingHost;
    const ws = tmp.join('ws-collect');
    mkdirSync(ws);
    const runs = join(workDir, 'collect-runs');
    const t = task(`echo collected > out/r; echo run >> ${shq(runs)}`, {
      cwd: ws,
      files: { inputs: [], outputs: ['out/r'] },
    });
    await ex.submit(t);
    // The job ends, but every fetch fails: paused after the retries, never finished or failed.
    await until(
      () =>
        ex.get(t.taskId)?.state === 'paused' ||
        isTerminal(defined(ex.get(t.taskId), 'ex.get(t.taskId)').state),
      'the pause',
    );
    const rec = ex.get(t.taskId) as TaskRecord;
    // Paused from where the runner last saw it (a task this short may never be seen running).
    expect(rec.state, rec.reason).toBe('paused');
    expect(rec.reason).toMatch(
      /could not bring back the outputs from .* \(3 tries\): Connection reset.*paused after retries; resume the task/s,
    );
    expect(h.fetchFailures).toBe(3);
    expect(existsSync(join(ws, 'out/r'))).toBe(false);
    h.down = false;
    await ex.resume(t.taskId);
    const done = await ex.wait(t.taskId);
    expect(done).toMatchObject({ state: 'finished', exitCode: 0 });
    expect(readFileSync(join(ws, 'out/r'), 'utf8')).toBe('collected\n');
    expect(readFileSync(runs, 'utf8')).toBe('run\n');
    expect(done.history.map((x) => x.state)).toContain('paused');
    await ex.close();
  });

  it('removes a finished job folder past its keep time, keeps a failed one, a watched one and one it did not make', async () => {
    const { ex, backend } = setup(undefined, {}, { keep: { okMs: 0, failedMs: 3_600_000 } });
    const foreign = join(jobsDir, 'keep-me');
    mkdirSync(foreign);
    const dirOf = (id: string) =>
      dirname(defined(defined(ex.get(id), 'ex.get(id)').stdoutPath, 'ex.get(id).stdoutPath'));
    const ok = task('echo fine');
    await ex.submit(ok);
    expect((await ex.wait(ok.taskId)).state).toBe('finished');
    const bad = task('echo broken; exit 1');
    await ex.submit(bad);
    expect((await ex.wait(bad.taskId)).state).toBe('failed');
    const gate = tmp.join('gate-sweep');
    const held = task(`while [ ! -e ${gate} ]; do sleep 0.1; done`);
    await ex.submit(held);
    try {
      await until(() => ex.get(held.taskId)?.state === 'running', 'the held task running');
      // The ended job leaves the backend's watch on its next poll; then a sweep removes it.
      await until(async () => {
        await backend.sweepNow();
        return !existsSync(dirOf(ok.taskId));
      }, 'the finished job folder removed');
      expect(existsSync(dirOf(bad.taskId))).toBe(true);
      expect(await ex.logs(bad.taskId)).toBe('broken\n');
      expect(existsSync(dirOf(held.taskId))).toBe(true);
      expect(existsSync(foreign)).toBe(true);
      // (earlier tests' finished job folders in the same jobs folder go too: keep time 0)
      expect(backend.stats().swept).toBeGreaterThanOrEqual(1);
    } finally {
      // Whatever failed above, the held task ends and frees its CPU for the next tests.
      writeFileSync(gate, '');
    }
    expect((await ex.wait(held.taskId)).state).toBe('finished');
    await ex.close();
  });

  it('keeps the job folder of a task whose log is still being published, whatever the keep time', async () => {
    const unpublished = new Map<string, TaskRecord>();
    const { ex, backend } = setup(
      undefined,
      {},
      {
        keep: { okMs: 0, failedMs: 0 },
        unpublishedLogs: () => unpublished.values(),
      },
    );
    const dirOf = (id: string) =>
      dirname(defined(defined(ex.get(id), 'ex.get(id)').stdoutPath, 'ex.get(id).stdoutPath'));
    const held = task('echo the last piece');
    await ex.submit(held);
    const rec = await ex.wait(held.taskId);
    expect(rec.state).toBe('finished');
    unpublished.set(held.taskId, rec);
    // Another task's job, ended after the held one's: once a sweep removed its folder, the held
    // task's job had left the backend's watch too (both ended before that poll).
    const other = task('echo not held');
    await ex.submit(other);
    expect((await ex.wait(other.taskId)).state).toBe('finished');
    await until(async () => {
      await backend.sweepNow();
      return !existsSync(dirOf(other.taskId));
    }, 'the job folder of the task not held removed');
    expect(await ex.logs(held.taskId)).toBe('the last piece\n');
    unpublished.delete(held.taskId);
    await backend.sweepNow();
    expect(existsSync(dirOf(held.taskId))).toBe(false);
    await ex.close();
  });

  it('makes a task environment as the job user where the job runs, once, and runs tasks in it', async () => {
    // The environments live below tasks_local_dir, made by cpuser; pip finds the package in a
    // folder of this test (no network).
    const tasksDir = tmp.join('tasks');
    const wheels = tmp.join('wheels');
    openFolders(tasksDir, wheels);
    await makeWheel(wheels, 'cphello', '1.0', { '__init__.py': 'def greet():\n    return "hi"\n' });
    const { ex } = setup(undefined, {
      tasks_python_config: { default_version: '3.11', versions: { '3.11': '/usr/bin/python3' } },
    });
    const env = { PIP_NO_INDEX: '1', PIP_FIND_LINKS: wheels, PIP_NO_CACHE_DIR: '1' };
    const environment = { requirements: ['cphello==1.0'] };
    const run = 'python -c "import cphello; print(cphello.greet())"; id -un';
    const first = task(run, { env, environment });
    await ex.submit(first);
    const f = await ex.wait(first.taskId);
    expect(f.state, `${f.reason}\n${await ex.logs(first.taskId, 'stderr')}`).toBe('finished');
    expect(await ex.logs(first.taskId)).toBe(`hi\n${USER}\n`);
    expect(await ex.logs(first.taskId, 'stderr')).toMatch(/making the task environment/);
    const second = task(run, { env, environment });
    await ex.submit(second);
    expect((await ex.wait(second.taskId)).state).toBe('finished');
    expect(await ex.logs(second.taskId, 'stderr')).not.toMatch(/making the task environment/);
    const envs = readdirSync(join(tasksDir, 'envs')).filter((d) => !d.endsWith('.lock'));
    expect(envs).toHaveLength(1);
    expect(statSync(join(tasksDir, 'envs', defined(envs[0], 'envs[0]'))).uid).not.toBe(
      process.getuid?.(),
    );
    await ex.close();
  });

  it('pauses, resumes and kills tasks whose job is still being launched, without hanging or running twice', async () => {
    const { ex, host } = setup((inner) => new GatedStageHost(inner, () => false));
    const gated = host as GatedStageHost;
    const runs = join(workDir, 'launch-runs');
    const paused = task(`echo p >> ${shq(runs)}; echo resumed`);
    // If its job starts it before the kill's markers land (they follow the launch), the
    // markers end it within the sleep: it never gets to write.
    const killed = task(`sleep 20; echo k >> ${shq(runs)}`);
    await Promise.all([ex.submit(paused), ex.submit(killed)]);
    await until(() => gated.staging > 0, 'the launch to reach staging');
    // The executor holds each task's turn while the backend pauses or kills it; the launch
    // needs those turns to record its job id. Both must come back while the launch waits.
    expect((await ex.pause(paused.taskId)).state).toBe('paused');
    expect((await ex.kill(killed.taskId)).state).toBe('killed');
    gated.open();
    await until(() => ex.get(paused.taskId)?.jobId !== undefined, 'the job id recorded');
    expect((await ex.resume(paused.taskId)).state).toBe('submitted');
    const done = await ex.wait(paused.taskId);
    expect(done.state, done.reason).toBe('finished');
    expect(await ex.logs(paused.taskId)).toBe('resumed\n');
    // the paused one ran once; the killed one wrote nothing
    expect(readFileSync(runs, 'utf8')).toBe('p\n');
    await ex.close();
  });

  it('runs a GPU task with the gpu_slurm_config laid over the default, and fails one where the resource has none', async () => {
    // No GRES on the test node: the GPU config adds a comment, which the job itself reads back
    // from SLURM; a CPU task in the same window goes into a job of its own, without it.
    const jrc = resource().jobs_runner_config;
    const { ex } = setup(undefined, {
      jobs_runner_config: {
        ...jrc,
        gpu_slurm_config: { extra_lines: ['#SBATCH --comment=cp-gpu-job'] },
      },
    });
    const show = 'scontrol show job "$SLURM_JOB_ID" | grep -o "Comment=[^ ]*" || echo no-comment';
    const gpu = task(show, { gpu: true });
    const cpu = task(show);
    await Promise.all([ex.submit(gpu), ex.submit(cpu)]);
    const [g, c] = await Promise.all([ex.wait(gpu.taskId), ex.wait(cpu.taskId)]);
    expect([g.state, c.state], `${g.reason} ${c.reason}`).toEqual(['finished', 'finished']);
    expect(await ex.logs(gpu.taskId)).toBe('Comment=cp-gpu-job\n');
    expect(await ex.logs(cpu.taskId)).toBe('no-comment\n');
    expect(g.jobId).not.toBe(c.jobId);
    await ex.close();

    const plain = setup();
    const refused = task('true', { gpu: true });
    await plain.ex.submit(refused);
    const r = await plain.ex.wait(refused.taskId);
    expect(r.state).toBe('failed');
    expect(r.reason).toMatch(/asks for a GPU.*has no jobs_runner_config\.gpu_slurm_config/);
    expect(plain.backend.stats().sbatch).toBe(0);
    await plain.ex.close();
  });

  it('fails tasks sbatch refuses, with SLURM’s reason, and refuses invalid user names', async () => {
    const bad = resource().jobs_runner_config;
    const { ex } = setup(undefined, {
      jobs_runner_config: {
        ...bad,
        default_slurm_config: { ...bad.default_slurm_config, partition: 'no-such-partition' },
      },
    });
    const t = task('true');
    await ex.submit(t);
    const done = await ex.wait(t.taskId);
    expect(done.state).toBe('failed');
    expect(done.reason).toMatch(/sbatch failed.*invalid partition/is);
    await ex.close();
    for (const u of ['-n', 'root;id', '$(id)', 'A B', ''])
      expect(() => new SudoHost({ username: u })).toThrow(UnsafeValueError);
  });

  it('survives kill -9 of the runner: reconciles with SLURM and the exit files, runs nothing twice', async () => {
    const records = tmp.join('crash-records');
    const runs = tmp.join('crash-runs');
    const gate = tmp.join('crash-gate');
    mkdirSync(runs);
    chmodSync(runs, 0o1777);
    const waitGate = `while [ ! -e ${gate} ]; do sleep 0.1; done`;
    const mk = (id: string, body: string): TaskSubmitted => ({
      taskId: id,
      resource: 'slurm-cluster',
      command: `echo run >> ${runs}/${id}; ${body}`,
      cwd: workDir,
      env: {},
      gpu: false,
    });
    const tasks = [
      mk('ends-while-down', `${waitGate}; exit 4`),
      mk('ends-after', `${waitGate}; sleep 3; echo late`),
    ];
    const env = {
      CRASH_RECORDS: records,
      CRASH_RESOURCE: JSON.stringify(resource()),
      CRASH_PROFILE: JSON.stringify({
        name: 'SLURM/sudo profile',
        resource_type: 'slurm_sudo',
        username: USER,
      }),
      CRASH_TASKS: JSON.stringify(tasks),
      CRASH_READY: 'ends-while-down:running,ends-after:running',
    };
    const first = crashRunner('runner', 'start', env);
    await first.waitForOutput('ready', 90_000);
    await first.kill9();
    const jobId = defined(
      defined(new FileHooks(records).load()[0], 'new FileHooks(records).load()[0]').jobId,
      'new FileHooks(records).load()[0].jobId',
    );
    writeFileSync(gate, '');
    const dir = slurmHandleOf(
      defined(new FileHooks(records).load()[0], 'new FileHooks(records).load()[0]'),
    ).dir;
    await until(
      () => existsSync(`${dir}/${slurmIndexOf(records, 'ends-while-down')}.exit`),
      'exit file',
    );
    const second = crashRunner('runner', 'recover', env);
    expect(await second.exited()).toBe(0);
    const byId = new Map(new FileHooks(records).load().map((r) => [r.task.taskId, r]));
    expect(byId.get('ends-while-down')).toMatchObject({ state: 'failed', exitCode: 4, jobId });
    expect(byId.get('ends-after')).toMatchObject({ state: 'finished', exitCode: 0, jobId });
    for (const t of tasks) expect(readFileSync(`${runs}/${t.taskId}`, 'utf8')).toBe('run\n');
  });
});

function slurmHandleOf(rec: TaskRecord) {
  return rec.handle as { dir: string; index: number };
}
function slurmIndexOf(records: string, id: string): number {
  return slurmHandleOf(
    defined(
      new FileHooks(records).load().find((r) => r.task.taskId === id),
      'new FileHooks(records).load().find((r) => r.task.taskId === id)',
    ),
  ).index;
}
