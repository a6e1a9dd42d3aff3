import { chmodSync, copyFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  parseResource,
  type SlurmSudoResource,
  type TaskRecord,
  type TaskState,
  type TaskSubmitted,
} from '@computepods/protocol';
import {
  defined,
  ensureSystemUser,
  Slurm,
  shareDirs,
  TempDir,
  until as waitUntil,
} from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Executor } from './executor.js';
import type { RetryPolicy } from './retry.js';
import { slurmResourceFields, sudoSlurmExecutor } from './test-slurm-setup.js';

// The faults an HPC site really has, on one real single-node SLURM for the file (its own
// munged, slurmctld and slurmd, ports and temp dir): the controller restarted or down, a job
// cancelled behind the runner's back, a broken client config, the node crashing. Each task
// must end in the right state with a reason, never "finished" without its exit file, and
// nothing may run twice. cpuser runs the jobs through `sudo -n -u cpuser`.
const USER = 'cpuser';
let slurm: Slurm;
const tmp = new TempDir('cp-slurm-faults-');
const jobsDir = tmp.join('jobs');
const workDir = tmp.join('work');
const runs = tmp.join('runs');
const gates = tmp.join('gates');
/** The runner's own copy of the client config (fault 3 breaks it). */
const runnerConf = tmp.join('runner-slurm.conf');
const executors: Executor[] = [];

beforeAll(async () => {
  ensureSystemUser(USER);
  shareDirs(tmp, [jobsDir, workDir, runs, gates]);
  // A node that stops answering is declared down (and its jobs failed or requeued) after
  // SlurmdTimeout: 5 s instead of 300, so the node crash ends in the test's time.
  slurm = await Slurm.start({ extraConfig: ['SlurmdTimeout=5'] });
  copyFileSync(slurm.conf, runnerConf);
  chmodSync(runnerConf, 0o644);
}, 120_000);
afterAll(async () => {
  await Promise.allSettled(executors.map((e) => e.close()));
  await slurm?.[Symbol.asyncDispose]();
  tmp[Symbol.dispose]();
}, 120_000);

function resource(extra: Record<string, unknown> = {}, numJobs = 8): SlurmSudoResource {
  return parseResource({
    type: 'slurm_sudo',
    name: 'SLURM cluster',
    ...slurmResourceFields(slurm, {
      jobsDir,
      tasksDir: tmp.join('tasks'),
      // one CPU per job: every task its own job unless numJobs packs them
      batching: {
        target_cpus_per_job: 1,
        max_cpus_per_job: 1,
        target_mem_per_job: 500,
        max_mem_per_job: 500,
        target_num_jobs: numJobs,
        max_num_jobs: numJobs,
      },
      clientEnv: { SLURM_CONF: runnerConf },
    }),
    ...extra,
  }) as SlurmSudoResource;
}

function setup(
  retry: RetryPolicy,
  opts: { extra?: Record<string, unknown>; numJobs?: number } = {},
) {
  const { ex, hooks, backend } = sudoSlurmExecutor(resource(opts.extra, opts.numJobs), {
    user: USER,
    cwd: workDir,
    options: { retry },
  });
  executors.push(ex);
  return { ex, hooks, backend };
}

let n = 0;
/** A task that appends to its own runs file (to count its runs), then runs body. */
function task(body: string): TaskSubmitted {
  n++;
  const id = `f${n}`;
  return {
    taskId: id,
    resource: 'slurm-cluster',
    command: `echo run >> ${runs}/${id}; ${body}`,
    cwd: workDir,
    env: {},
    gpu: false,
  };
}
const runsOf = (t: TaskSubmitted) =>
  existsSync(`${runs}/${t.taskId}`) ? readFileSync(`${runs}/${t.taskId}`, 'utf8') : '';
const gate = (name: string) => join(gates, name);
const waitGate = (name: string) => `while [ ! -e ${gate(name)} ]; do sleep 0.1; done`;
const open = (name: string) => writeFileSync(gate(name), '');
const states = (rec: TaskRecord): TaskState[] => rec.history.map((h) => h.state);
const handleOf = (rec: TaskRecord) => rec.handle as { dir: string; index: number };
const exitFile = (rec: TaskRecord) => `${handleOf(rec).dir}/${handleOf(rec).index}.exit`;

const until = (cond: () => boolean | Promise<boolean>, what: string, ms = 120_000) =>
  waitUntil(cond, what, ms, () => slurm.output.slice(-3000));

// Many tries, short waits: polling goes on through a controller outage of a minute or more.
const PATIENT: RetryPolicy = { attempts: 12, baseMs: 200, maxMs: 1_000 };

describe('SLURM faults on a real SLURM', { timeout: 240_000 }, () => {
  it('1. slurmctld restarted mid-job: the job goes on, polling survives the outage and sees it finish', async () => {
    const { ex, backend } = setup(PATIENT);
    const t = task(`${waitGate('ctld-restart')}; echo survived`);
    await ex.submit(t);
    await until(() => ex.get(t.taskId)?.state === 'running', 'the task to run');
    const before = backend.stats().pollFailures ?? 0;
    await slurm.stopController();
    await until(
      () => (backend.stats().pollFailures ?? 0) >= before + 1,
      'a poll to fail while slurmctld is down',
    );
    expect(ex.get(t.taskId)?.state).toBe('running');
    await slurm.startController();
    open('ctld-restart');
    const done = await ex.wait(t.taskId);
    expect(done, done.reason).toMatchObject({ state: 'finished', exitCode: 0 });
    expect(states(done)).toEqual(['created', 'submitted', 'running', 'finished']);
    expect(await ex.logs(t.taskId)).toBe('survived\n');
    expect(runsOf(t)).toBe('run\n');
    // The task ends with its command; SLURM's job may still be COMPLETING (its cleanup, slower
    // on a loaded machine after the controller's restart: fresh-clone CI saw it) for a moment.
    const job = await slurm.waitForJob(defined(done.jobId, 'done.jobId'));
    expect(job.JobState).toBe('COMPLETED');
  });

  it('2. a job cancelled outside ComputePods (scancel as the job user, or as root) fails with a reason naming the cancellation', async () => {
    const { ex } = setup(PATIENT);
    const byUser = task('sleep 300');
    const byRoot = task('sleep 300');
    await ex.submit(byUser);
    await ex.submit(byRoot);
    await until(
      () => [byUser, byRoot].every((t) => ex.get(t.taskId)?.state === 'running'),
      'both tasks to run',
    );
    const userJob = defined(
      defined(ex.get(byUser.taskId), 'ex.get(byUser.taskId)').jobId,
      'ex.get(byUser.taskId).jobId',
    );
    const rootJob = defined(
      defined(ex.get(byRoot.taskId), 'ex.get(byRoot.taskId)').jobId,
      'ex.get(byRoot.taskId).jobId',
    );
    expect(userJob).not.toBe(rootJob);
    const asUser = await slurm.command(['scancel', userJob], { user: USER });
    expect(asUser.code, asUser.stderr).toBe(0);
    const asRoot = await slurm.command(['scancel', rootJob]);
    expect(asRoot.code, asRoot.stderr).toBe(0);
    for (const t of [byUser, byRoot]) {
      const done = await ex.wait(t.taskId);
      expect(done.state, done.reason).toBe('failed');
      expect(done.reason).toMatch(
        new RegExp(`SLURM job ${done.jobId} was cancelled outside ComputePods`),
      );
      expect(states(done)).not.toContain('finished');
      expect(runsOf(t)).toBe('run\n');
    }
    expect((await slurm.showJob(userJob)).JobState).toBe('CANCELLED');
  });

  it('3a. squeue failing while slurmctld is down ~20 s: the ended task is not called done until squeue answers, then finishes', async () => {
    const { ex, backend } = setup(PATIENT);
    const t = task(`${waitGate('squeue-down')}; echo after-outage`);
    await ex.submit(t);
    await until(() => ex.get(t.taskId)?.state === 'running', 'the task to run');
    await slurm.stopController();
    // The job ends while the controller is down: its exit file is there, squeue fails.
    open('squeue-down');
    await until(
      () => existsSync(exitFile(defined(ex.get(t.taskId), 'ex.get(t.taskId)'))),
      'the exit file',
    );
    const failed = backend.stats().pollFailures ?? 0;
    await until(
      () => (backend.stats().pollFailures ?? 0) >= failed + 2,
      'two more failed polls after the job ended',
    );
    expect(ex.get(t.taskId)?.state).toBe('running');
    await slurm.startController();
    const done = await ex.wait(t.taskId);
    expect(done, done.reason).toMatchObject({ state: 'finished', exitCode: 0 });
    expect(states(done)).toEqual(['created', 'submitted', 'running', 'finished']);
    expect(await ex.logs(t.taskId)).toBe('after-outage\n');
    expect(runsOf(t)).toBe('run\n');
  });

  it('3b. a broken SLURM config for the runner: squeue fails, the task is paused with the reason (not done), and finishes after the fix and a resume', async () => {
    const { ex } = setup(PATIENT);
    const t = task(`${waitGate('bad-conf')}; echo fixed`);
    await ex.submit(t);
    await until(() => ex.get(t.taskId)?.state === 'running', 'the task to run');
    const good = readFileSync(runnerConf, 'utf8');
    writeFileSync(runnerConf, `NoSuchOption=1\n${good}`);
    open('bad-conf');
    await until(() => ex.get(t.taskId)?.state === 'paused', 'the pause');
    const paused = defined(ex.get(t.taskId), 'ex.get(t.taskId)');
    expect(paused.pausedFrom).toBe('running');
    expect(paused.reason).toMatch(/Unable to process configuration file.*paused after retries/s);
    expect(states(paused)).not.toContain('finished');
    writeFileSync(runnerConf, good);
    await ex.resume(t.taskId);
    const done = await ex.wait(t.taskId);
    expect(done, done.reason).toMatchObject({ state: 'finished', exitCode: 0 });
    expect(states(done)).toEqual([
      'created',
      'submitted',
      'running',
      'paused',
      'running',
      'finished',
    ]);
    expect(runsOf(t)).toBe('run\n');
  });

  it('4. the node crashes mid-job (slurmd, slurmstepd and the job killed -9) and comes back: a requeued job and a NODE_FAIL job both fail their running task with the reason; nothing runs twice', async () => {
    // A: SLURM's default, requeue on node failure; two tasks in one job, one lane: the first
    // ends before the crash, the second is running. B: --no-requeue, so SLURM ends it NODE_FAIL.
    const a = setup(PATIENT, { numJobs: 1 });
    const b = setup(PATIENT, {
      extra: {
        jobs_runner_config: {
          ...resource().jobs_runner_config,
          default_slurm_config: {
            ...resource().jobs_runner_config.default_slurm_config,
            extra_lines: ['#SBATCH --no-requeue'],
          },
        },
      },
    });
    const quick = task('echo quick');
    const long = task('sleep 300');
    const lone = task('sleep 300');
    await Promise.all([a.ex.submit(quick), a.ex.submit(long), b.ex.submit(lone)]);
    await until(
      () =>
        a.ex.get(quick.taskId)?.state === 'finished' &&
        a.ex.get(long.taskId)?.state === 'running' &&
        b.ex.get(lone.taskId)?.state === 'running',
      'quick done, long and lone running',
    );
    const jobA = defined(
      defined(a.ex.get(long.taskId), 'a.ex.get(long.taskId)').jobId,
      'a.ex.get(long.taskId).jobId',
    );
    const jobB = defined(
      defined(b.ex.get(lone.taskId), 'b.ex.get(lone.taskId)').jobId,
      'b.ex.get(lone.taskId).jobId',
    );
    expect(a.ex.get(quick.taskId)?.jobId).toBe(jobA);

    await slurm.crashNode();
    // SLURM declares the silent node down: A goes back to waiting (requeued), B ends NODE_FAIL.
    await until(
      async () =>
        (await slurm.showJob(jobB)).JobState === 'NODE_FAIL' &&
        (await slurm.showJob(jobA)).JobState === 'PENDING',
      'SLURM to fail B and requeue A',
    );
    await slurm.startNode();

    const lost = await a.ex.wait(long.taskId);
    expect(lost.state, lost.reason).toBe('failed');
    expect(lost.exitCode).toBeNull();
    expect(lost.reason).toMatch(
      new RegExp(`SLURM requeued job ${jobA}.*after this task had started.*not run a second time`),
    );
    const failed = await b.ex.wait(lone.taskId);
    expect(failed.state, failed.reason).toBe('failed');
    expect(failed.reason).toMatch(new RegExp(`SLURM job ${jobB} ended NODE_FAIL.*no exit code`));
    expect(a.ex.get(quick.taskId)).toMatchObject({ state: 'finished', exitCode: 0 });
    for (const rec of [lost, failed]) expect(states(rec)).not.toContain('finished');

    // Nothing of ours is left to run in the requeued job: the executor cancels it, so it never
    // runs again (its second run would only have marked the lost task, see slurm-script.test).
    const ended = await slurm.waitForJob(jobA, 60_000);
    expect(ended.JobState, `${JSON.stringify(ended)}\n${slurm.logTail(60)}`).toBe('CANCELLED');
    expect(
      readFileSync(exitFile(defined(a.ex.get(quick.taskId), 'a.ex.get(quick.taskId)')), 'utf8'),
    ).toBe('0\n');
    expect(await a.ex.logs(quick.taskId)).toBe('quick\n');
    for (const t of [quick, long, lone]) expect(runsOf(t)).toBe('run\n');
  });

  it('5. a running job requeued and held by SLURM (as after a failed relaunch): its task fails, and the executor cancels the job, which would otherwise wait held for ever', async () => {
    const { ex } = setup(PATIENT);
    const t = task('sleep 300');
    await ex.submit(t);
    await until(() => ex.get(t.taskId)?.state === 'running', 'the task running');
    const jobId = defined(defined(ex.get(t.taskId), 'ex.get(t.taskId)').jobId, 'jobId');
    const hold = await slurm.command(['scontrol', 'requeuehold', jobId]);
    expect(hold.code, hold.stderr).toBe(0);

    // SLURM's requeue stops the job with SIGTERM: the task's exit code is then recorded (143)
    // by the job's script, or, when the script is stopped first, the task is lost.
    const lost = await ex.wait(t.taskId);
    expect(lost.state, lost.reason).toBe('failed');
    expect(lost.reason).toMatch(
      new RegExp(`^exit code 143|SLURM requeued job ${jobId}.*after this task had started`),
    );
    const ended = await slurm.waitForJob(jobId, 60_000);
    expect(ended.JobState, `${JSON.stringify(ended)}\n${slurm.logTail(60)}`).toBe('CANCELLED');
    expect(runsOf(t)).toBe('run\n');
  });
});
