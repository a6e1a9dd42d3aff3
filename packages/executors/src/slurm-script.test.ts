import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { BatchingConfig, JobRunnerConfigSlurm } from '@computepods/protocol';
import { TempDir } from '@computepods/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { UnsafeValueError } from './errors.js';
import { BatchingError, chunk, planBatches } from './slurm-batching.js';
import { jobPhase, parseScan, parseSqueue, SCAN_SCRIPT, squeueArgs } from './slurm-queue.js';
import {
  effectiveConfig,
  type JobSpec,
  jobScript,
  resolveExports,
  sbatchArgs,
} from './slurm-script.js';

const tmp = new TempDir('cp-slurm-script-');
afterAll(() => tmp[Symbol.dispose]());

const fractal: BatchingConfig = {
  target_cpus_per_job: 1,
  max_cpus_per_job: 1,
  target_mem_per_job: 200,
  max_mem_per_job: 500,
  target_num_jobs: 2,
  max_num_jobs: 4,
};

describe('batching heuristic (as Fractal)', () => {
  const needs = { cpusPerTask: 1, memPerTaskMb: 100 };
  it('fills jobs up to the targets when that gives few enough jobs', () => {
    const cfg = { ...fractal, target_cpus_per_job: 4, max_cpus_per_job: 8 };
    // target: min(4 cpus, 200/100 MB) = 2 per job → 2 jobs for 4 tasks ≤ target_num_jobs
    expect(planBatches(4, needs, cfg)).toEqual({ tasksPerJob: 2, parallelTasksPerJob: 2 });
  });
  it('goes up to the maxima when the targets would need too many jobs', () => {
    const cfg = { ...fractal, target_cpus_per_job: 4, max_cpus_per_job: 8 };
    // max: min(8, 500/100) = 5 per job → 2 jobs for 10 tasks ≤ max_num_jobs
    expect(planBatches(10, needs, cfg)).toEqual({ tasksPerJob: 5, parallelTasksPerJob: 5 });
  });
  it('queues tasks inside max_num_jobs jobs when even the maxima are not enough', () => {
    expect(planBatches(1000, needs, fractal)).toEqual({ tasksPerJob: 250, parallelTasksPerJob: 1 });
  });
  it('packs by CPUs alone when no memory is asked for', () => {
    const cfg = { ...fractal, target_cpus_per_job: 3, max_cpus_per_job: 3, target_num_jobs: 1 };
    expect(planBatches(3, { cpusPerTask: 1, memPerTaskMb: undefined }, cfg)).toEqual({
      tasksPerJob: 3,
      parallelTasksPerJob: 3,
    });
  });
  it('refuses a task bigger than a job may be', () => {
    expect(() => planBatches(1, { cpusPerTask: 2, memPerTaskMb: 1 }, fractal)).toThrow(
      BatchingError,
    );
    expect(() => planBatches(1, { cpusPerTask: 1, memPerTaskMb: 600 }, fractal)).toThrow(
      /needs 600 MB but max_mem_per_job is 500 MB/,
    );
  });
  it('chunks', () => {
    expect(chunk([1, 2, 3, 4, 5], 2)).toEqual([[1, 2], [3, 4], [5]]);
  });
});

const jrc: JobRunnerConfigSlurm = {
  default_slurm_config: {
    partition: 'main',
    cpus_per_task: 2,
    mem: '1G',
    account: 'lab',
    extra_lines: ['#SBATCH --qos=low'],
  },
  gpu_slurm_config: { partition: 'gpu', extra_lines: ['#SBATCH --gres=gpu:v100:1'] },
  user_local_exports: { CACHE: 'cache', ABS: '/abs/x' },
  batching_config: fractal,
};

describe('sbatch options', () => {
  it('asks for lanes × the per-task CPUs and memory, one argument per option', () => {
    const spec: JobSpec = {
      dir: '/jobs/k 1%x',
      jobName: 'cp-k1',
      tasks: [],
      lanes: 3,
      config: effectiveConfig(jrc, false),
      exports: {},
    };
    expect(sbatchArgs(spec, '/jobs/k 1%x/job.sh')).toEqual([
      '--parsable',
      '--job-name=cp-k1',
      '--chdir=/jobs/k 1%x',
      '--output=/jobs/k 1%%x/job.out',
      '--error=/jobs/k 1%%x/job.err',
      '--ntasks=1',
      '--cpus-per-task=6',
      '--mem=3000M',
      '--partition=main',
      '--account=lab',
      '/jobs/k 1%x/job.sh',
    ]);
  });
  it('lays the GPU configuration over the default one', () => {
    const gpu = effectiveConfig(jrc, true);
    expect(gpu.partition).toBe('gpu');
    expect(gpu.cpus_per_task).toBe(2);
    expect(gpu.extra_lines).toEqual(['#SBATCH --qos=low', '#SBATCH --gres=gpu:v100:1']);
  });
  it('puts relative exports below the tasks folder', () => {
    expect(resolveExports(jrc.user_local_exports, '/tasks')).toEqual({
      CACHE: '/tasks/cache',
      ABS: '/abs/x',
    });
  });
});

describe('squeue and scan parsing', () => {
  it("asks squeue for this user's jobs only (--me), by name or by ids", () => {
    expect(squeueArgs({ name: 'cp-k1' }, '%i', { allStates: true })).toEqual([
      'squeue',
      '--me',
      '--noheader',
      '--states=all',
      '--format=%i',
      '--name=cp-k1',
    ]);
    expect(squeueArgs({ jobs: ['12', '13'] }, '%i|%T')).toEqual([
      'squeue',
      '--me',
      '--noheader',
      '--format=%i|%T',
      '--jobs=12,13',
    ]);
  });

  it('reads states and phases', () => {
    const s = parseSqueue('12|RUNNING|None\n13|PENDING|JobHeldUser\n\n');
    expect(s.get('13')).toEqual({ state: 'PENDING', reason: 'JobHeldUser' });
    expect(
      ['PENDING', 'RUNNING', 'COMPLETING', 'COMPLETED', 'CANCELLED+', undefined].map(jobPhase),
    ).toEqual(['pending', 'active', 'active', 'ended', 'ended', 'gone']);
  });
});

// The generated script is plain POSIX sh: run it here, without SLURM, to test what it does.
function runScript(spec: JobSpec): { code: number | null; stderr: string } {
  mkdirSync(spec.dir, { recursive: true });
  const path = join(spec.dir, 'job.sh');
  writeFileSync(path, jobScript(spec));
  const r = spawnSync('/bin/sh', [path], { encoding: 'utf8', timeout: 30_000 });
  return { code: r.status, stderr: r.stderr };
}

describe('job script', () => {
  const pwned = tmp.join('pwned');
  const hostile = [
    `$(touch ${pwned})`,
    `\`touch ${pwned}\``,
    `; touch ${pwned}`,
    `'; touch ${pwned}; '`,
    `"\ntouch ${pwned}\n"`,
  ].join(' ');

  it('runs every task with its own output and exit code, quoting every value', () => {
    const dir = tmp.join(`job $(touch ${pwned}) 'q'`);
    // a newline in a cwd is refused (see below); everything else arrives literally
    const cwd = tmp.join(`cwd \`touch ${pwned}\`; 'x' $(y)`);
    mkdirSync(cwd, { recursive: true });
    const spec: JobSpec = {
      dir,
      jobName: 'cp-test',
      lanes: 2,
      config: { extra_lines: ['#SBATCH --comment=x'] },
      exports: { CACHE: `/c/${hostile}` },
      tasks: [
        { index: 0, command: 'echo zero; pwd', cwd, env: {} },
        { index: 1, command: 'echo one >&2; exit 3', cwd: tmp.path, env: {} },
        { index: 2, command: 'printf %s "$V"', cwd: tmp.path, env: { V: hostile } },
        { index: 3, command: 'printf %s "$CACHE"', cwd: tmp.path, env: {} },
        // the command itself is shell by contract; it must arrive unchanged
        { index: 4, command: `printf '%s\\n' "a'b\\"c" 'd$e'`, cwd: tmp.path, env: {} },
      ],
    };
    const r = runScript(spec);
    expect(r.code).toBe(0);
    const read = (n: string) => readFileSync(join(dir, n), 'utf8');
    expect(read('0.out')).toBe(`zero\n${cwd}\n`);
    expect(read('0.exit')).toBe('0\n');
    expect(read('1.err')).toBe('one\n');
    expect(read('1.exit')).toBe('3\n');
    expect(read('2.out')).toBe(hostile);
    expect(read('3.out')).toBe(`/c/${hostile}`);
    expect(read('4.out')).toBe(`a'b"c\nd$e\n`);
    expect(existsSync(join(dir, 'job.done'))).toBe(true);
    expect(existsSync(pwned)).toBe(false);

    const scan = spawnSync('/bin/sh', ['-c', SCAN_SCRIPT, 'sh', dir], { encoding: 'utf8' });
    const s = parseScan(scan.stdout);
    expect([0, 1, 2, 3, 4].map((i) => s.exitCode(dir, i))).toEqual([0, 3, 0, 0, 0]);
    expect(s.has(dir, '2.start')).toBe(true);
    expect(s.has(dir, 'job.done')).toBe(true);
  });

  it('skips a task whose skip marker exists, and says so', () => {
    const dir = tmp.join('skip');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, '1.skip'), '');
    const ran = tmp.join('skipped-ran');
    runScript({
      dir,
      jobName: 'cp-skip',
      lanes: 1,
      config: {},
      exports: {},
      tasks: [
        { index: 0, command: 'true', cwd: tmp.path, env: {} },
        { index: 1, command: `touch ${ran}`, cwd: tmp.path, env: {} },
      ],
    });
    expect(existsSync(join(dir, '1.skipped'))).toBe(true);
    expect(existsSync(join(dir, '1.exit'))).toBe(false);
    expect(existsSync(ran)).toBe(false);
    expect(readFileSync(join(dir, '0.exit'), 'utf8')).toBe('0\n');
  });

  it('run again (SLURM requeued the job), keeps what ended, marks what had started as lost, runs the rest once', () => {
    const dir = tmp.join('requeue');
    mkdirSync(dir, { recursive: true });
    const runs = tmp.join('requeue-runs');
    mkdirSync(runs, { recursive: true });
    const spec = {
      dir,
      jobName: 'cp-requeue',
      lanes: 1,
      config: {},
      exports: {},
      tasks: [0, 1, 2].map((index) => ({
        index,
        command: `echo run >> ${runs}/${index}; echo out-${index}`,
        cwd: tmp.path,
        env: {},
      })),
    };
    // The first run: task 0 ended, task 1 had started when the node died, task 2 never began.
    writeFileSync(join(dir, '0.start'), '');
    writeFileSync(join(dir, '0.exit'), '0\n');
    writeFileSync(join(runs, '0'), 'run\n');
    writeFileSync(join(dir, '1.start'), '');
    runScript(spec);
    expect(readFileSync(join(runs, '0'), 'utf8')).toBe('run\n');
    expect(readFileSync(join(dir, '0.exit'), 'utf8')).toBe('0\n');
    expect(existsSync(join(runs, '1'))).toBe(false);
    expect(existsSync(join(dir, '1.lost'))).toBe(true);
    expect(existsSync(join(dir, '1.exit'))).toBe(false);
    expect(readFileSync(join(runs, '2'), 'utf8')).toBe('run\n');
    expect(readFileSync(join(dir, '2.exit'), 'utf8')).toBe('0\n');
    const scan = parseScan(
      spawnSync('/bin/sh', ['-c', SCAN_SCRIPT, 'sh', dir], { encoding: 'utf8' }).stdout,
    );
    expect(scan.has(dir, '1.lost')).toBe(true);
  });

  it('kills one task of a running job (its whole group) when its kill marker appears', async () => {
    const dir = tmp.join('kill');
    mkdirSync(dir, { recursive: true });
    chmodSync(dir, 0o755);
    const path = join(dir, 'job.sh');
    writeFileSync(
      path,
      jobScript({
        dir,
        jobName: 'cp-kill',
        lanes: 2,
        config: {},
        exports: {},
        tasks: [
          { index: 0, command: 'sleep 60 & wait', cwd: tmp.path, env: {} },
          { index: 1, command: 'echo other', cwd: tmp.path, env: {} },
        ],
      }),
    );
    const { spawn } = await import('node:child_process');
    const job = spawn('/bin/sh', [path], { stdio: 'ignore' });
    const done = new Promise((r) => job.on('exit', r));
    const end = performance.now() + 20_000;
    while (!existsSync(join(dir, '0.pid')) && performance.now() < end) await sleep(20);
    writeFileSync(join(dir, '0.kill'), '');
    await done;
    expect(readFileSync(join(dir, '0.exit'), 'utf8')).toBe('143\n');
    expect(readFileSync(join(dir, '1.out'), 'utf8')).toBe('other\n');
  });

  it('refuses what cannot be quoted', () => {
    const base: JobSpec = { dir: '/d', jobName: 'j', lanes: 1, config: {}, exports: {}, tasks: [] };
    expect(() => jobScript({ ...base, config: { extra_lines: ['#SBATCH -x\nrm -rf /'] } })).toThrow(
      UnsafeValueError,
    );
    expect(() =>
      jobScript({ ...base, tasks: [{ index: 0, command: 'a\0b', cwd: '/', env: {} }] }),
    ).toThrow(/NUL/);
    expect(() =>
      jobScript({ ...base, tasks: [{ index: 0, command: 'true', cwd: '/', env: { 'A;B': 'x' } }] }),
    ).toThrow(/not an environment variable name/);
    expect(() => jobScript({ ...base, exports: { '$(x)': 'y' } })).toThrow(UnsafeValueError);
    expect(() =>
      jobScript({ ...base, tasks: [{ index: 0, command: 'true', cwd: '/w\nrm -rf ~', env: {} }] }),
    ).toThrow(/refusing cwd .*control character/);
    expect(() =>
      jobScript({ ...base, config: { extra_lines: ['#SBATCH --qos=low', '#SBATCH --x=1; id'] } }),
    ).toThrow(/refusing extra_lines\.1 "#SBATCH --x=1; id": must be one sbatch directive/);
    expect(() => sbatchArgs({ ...base, dir: '/d\n#SBATCH --uid=0' }, '/d/job.sh')).toThrow(
      /refusing job folder .*control character/,
    );
  });
});
