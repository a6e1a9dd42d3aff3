import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import type { TaskRecord, TaskSubmitted } from '@computepods/protocol';
import { defined, TempDir, until } from '@computepods/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import type { LocalBackendOptions } from './local-backend.js';
import { crashRunner } from './test-crash-runner.js';
import { FileHooks } from './test-file-hooks.js';
import { localExecutor, testLocalResource } from './test-hooks.js';

/*
 * Ended local task folders go after their keep time (local-sweep.ts): real processes, real
 * folders; keep times are passed by moving the backend's clock, never waited for.
 */

const HOUR = 3_600_000;
const tmp = new TempDir('cp-local-sweep-');
afterAll(() => tmp[Symbol.dispose]());

function setup(
  name: string,
  keep: { okMs: number; failedMs: number },
  extra: Partial<LocalBackendOptions> = {},
) {
  const dir = tmp.join(name);
  mkdirSync(dir);
  const clock = { offset: 0 };
  const { ex, backend, hooks } = localExecutor({
    resource: testLocalResource(dir, 4),
    killGraceMs: 300,
    keep,
    now: () => Date.now() + clock.offset,
    ...extra,
  });
  return { ex, backend, hooks, clock, dir, jobs: join(dir, 'jobs') };
}

let n = 0;
function task(cwd: string, command: string): TaskSubmitted {
  n++;
  return {
    taskId: `s${n}-${process.pid}`,
    resource: 'local-resource',
    command,
    cwd,
    env: {},
    gpu: false,
  };
}

describe('local task folders are swept', { timeout: 60_000 }, () => {
  it('a finished task goes at the first sweep with keep 0; a failed one stays until the clock passes keep.failedMs', async () => {
    const { ex, backend, clock, dir, jobs } = setup('keep', { okMs: 0, failedMs: HOUR });
    await ex.adopt([]);
    const ok = task(dir, 'echo fine');
    const bad = task(dir, 'echo broken >&2; exit 3');
    await ex.submit(ok);
    await ex.submit(bad);
    expect((await ex.wait(ok.taskId)).state).toBe('finished');
    expect((await ex.wait(bad.taskId)).state).toBe('failed');
    expect(readFileSync(join(jobs, ok.taskId, 'stdout'), 'utf8')).toBe('fine\n');
    await backend.sweepNow();
    expect(existsSync(join(jobs, ok.taskId))).toBe(false);
    // Within its keep time: there to be looked into.
    expect(readFileSync(join(jobs, bad.taskId, 'stderr'), 'utf8')).toBe('broken\n');
    await backend.sweepNow();
    expect(existsSync(join(jobs, bad.taskId))).toBe(true);
    clock.offset = HOUR;
    await backend.sweepNow();
    expect(existsSync(join(jobs, bad.taskId))).toBe(false);
    expect(backend.stats()).toMatchObject({ swept: 2 });
    await ex.close();
  });

  it("never a running or queued task's folder, nor anything the backend did not make", async () => {
    const { ex, backend, dir, jobs } = setup(
      'watched',
      { okMs: 0, failedMs: 0 },
      // One slot: the second task waits in the queue.
      { parallel: 1 },
    );
    const gate = join(dir, 'gate');
    await ex.adopt([]);
    const running = task(
      dir,
      `echo started; while [ ! -e ${gate} ]; do sleep 0.05; done; echo late`,
    );
    const queued = task(dir, 'echo queued');
    await ex.submit(running);
    await ex.submit(queued);
    await until(() => existsSync(join(jobs, running.taskId, 'pid')), 'the running task started');
    // What the backend did not make: a task-id-named folder holding something else, a plain
    // file, a symlink to a folder of ours, a folder named like no task id.
    mkdirSync(join(jobs, 'foreign'));
    writeFileSync(join(jobs, 'foreign', 'exit'), '0\n');
    writeFileSync(join(jobs, 'foreign', 'notes.txt'), 'mine\n');
    writeFileSync(join(jobs, 'stray-file'), '0\n');
    mkdirSync(join(dir, 'elsewhere'));
    writeFileSync(join(dir, 'elsewhere', 'exit'), '0\n');
    symlinkSync(join(dir, 'elsewhere'), join(jobs, 'linked'));
    mkdirSync(join(jobs, 'with space'));
    writeFileSync(join(jobs, 'with space', 'exit'), '0\n');
    await backend.sweepNow();
    await backend.sweepNow();
    expect(existsSync(join(jobs, running.taskId, 'stdout'))).toBe(true);
    expect(ex.get(queued.taskId)?.state).toBe('submitted');
    expect(readdirSync(join(jobs, 'foreign')).sort()).toEqual(['exit', 'notes.txt']);
    expect(existsSync(join(jobs, 'stray-file'))).toBe(true);
    expect(existsSync(join(dir, 'elsewhere', 'exit'))).toBe(true);
    expect(existsSync(join(jobs, 'with space', 'exit'))).toBe(true);
    writeFileSync(gate, '');
    await ex.wait(running.taskId);
    await ex.wait(queued.taskId);
    // The running task wrote to the end into a folder that was kept.
    expect(readFileSync(join(jobs, running.taskId, 'stdout'), 'utf8')).toBe('started\nlate\n');
    await backend.sweepNow();
    expect(existsSync(join(jobs, running.taskId))).toBe(false);
    expect(existsSync(join(jobs, queued.taskId))).toBe(false);
    expect(readdirSync(join(jobs, 'foreign')).sort()).toEqual(['exit', 'notes.txt']);
    await ex.close();
  });

  it('never the folder of a task whose end is being collected: its exit written, its outputs on their way back', async () => {
    let release = () => {};
    const collecting = new Promise<void>((r) => {
      release = r;
    });
    let entered = false;
    const { ex, backend, dir, jobs } = setup(
      'collecting',
      { okMs: 0, failedMs: 0 },
      {
        // A pilot's staging, held while it brings the outputs back.
        staging: {
          stageIn: async () => dir,
          stageOut: async () => {
            entered = true;
            await collecting;
            return undefined;
          },
          stageFailed: async () => {},
        },
      },
    );
    await ex.adopt([]);
    const t = {
      ...task(dir, 'echo made > out; echo done'),
      files: { inputs: [], outputs: ['out'] },
    };
    await ex.submit(t);
    await until(() => entered, 'the outputs being brought back');
    expect(readFileSync(join(jobs, t.taskId, 'exit'), 'utf8')).toBe('0\n');
    await backend.sweepNow();
    await backend.sweepNow();
    expect(readFileSync(join(jobs, t.taskId, 'stdout'), 'utf8')).toBe('done\n');
    release();
    expect((await ex.wait(t.taskId)).state).toBe('finished');
    await backend.sweepNow();
    expect(existsSync(join(jobs, t.taskId))).toBe(false);
    await ex.close();
  });

  it('leaves the python environments folder when the task folders share its parent', async () => {
    const dir = tmp.join('envs-shared');
    const { ex, backend } = setup(
      'envs-shared',
      { okMs: 0, failedMs: 0 },
      {
        jobsDir: join(dir, 'tasks'),
      },
    );
    // The environments' folder as tasks_local_dir holds it, shaped like a task folder at worst.
    const envs = join(dir, 'tasks', 'envs');
    mkdirSync(envs, { recursive: true });
    writeFileSync(join(envs, 'stdout'), 'pip output\n');
    const t = task(dir, 'true');
    await ex.adopt([]);
    await ex.submit(t);
    await ex.wait(t.taskId);
    await backend.sweepNow();
    expect(existsSync(join(dir, 'tasks', t.taskId))).toBe(false);
    expect(readFileSync(join(envs, 'stdout'), 'utf8')).toBe('pip output\n');
    await ex.close();
  });

  it('sweeps the task folders left in the jobs folder from before per-project folders, and only those', async () => {
    const name = 'old-layout';
    const jobs = join(tmp.join(name), 'jobs');
    const { ex, backend, clock } = setup(
      name,
      { okMs: 0, failedMs: HOUR },
      { jobsDir: join(jobs, 'projects', 'p1'), oldJobsDir: jobs },
    );
    /** A folder the wrapper left, its exit code `code`; `life`: claimed (made since). */
    const left = (id: string, code: string, life?: string) => {
      mkdirSync(join(jobs, id), { recursive: true });
      writeFileSync(join(jobs, id, 'stdout'), 'old\n');
      writeFileSync(join(jobs, id, 'exit'), code);
      if (life) symlinkSync(life, join(jobs, id, 'life'));
    };
    left('old-ok', '0\n');
    left('old-failed', '3\n');
    // A pilot worker keeps the top level, and claims its folders: not of the old layout.
    left('pilot-made', '0\n', '2026-12-06T08:00:00.000Z');
    const t = task(tmp.join(name), 'echo new');
    await ex.adopt([]);
    await ex.submit(t);
    expect((await ex.wait(t.taskId)).state).toBe('finished');
    await backend.sweepNow();
    expect(existsSync(join(jobs, 'old-ok'))).toBe(false);
    expect(existsSync(join(jobs, 'old-failed', 'exit'))).toBe(true);
    expect(existsSync(join(jobs, 'pilot-made', 'exit'))).toBe(true);
    // This runner's own folders are in projects/p1, swept there as ever.
    expect(existsSync(join(jobs, 'projects', 'p1', t.taskId))).toBe(false);
    expect(existsSync(join(jobs, 'projects', 'p1'))).toBe(true);
    clock.offset = 2 * HOUR;
    await backend.sweepNow();
    expect(existsSync(join(jobs, 'old-failed'))).toBe(false);
    expect(existsSync(join(jobs, 'pilot-made', 'exit'))).toBe(true);
    expect(backend.stats().oldLayoutSwept).toBe(2);
    await ex.close();
  });

  it('keeps the folder of a task whose log is still being published, whatever the keep time', async () => {
    const held = new Map<string, TaskRecord>();
    const { ex, backend, dir, jobs } = setup(
      'held',
      { okMs: 0, failedMs: 0 },
      {
        unpublishedLogs: () => held.values(),
      },
    );
    await ex.adopt([]);
    const t = task(dir, 'echo last piece');
    await ex.submit(t);
    const rec = await ex.wait(t.taskId);
    held.set(t.taskId, rec);
    await backend.sweepNow();
    expect(readFileSync(join(jobs, t.taskId, 'stdout'), 'utf8')).toBe('last piece\n');
    held.delete(t.taskId);
    await backend.sweepNow();
    expect(existsSync(join(jobs, t.taskId))).toBe(false);
    await ex.close();
  });
});

describe('local task folders after kill -9 of the runner', { timeout: 180_000 }, () => {
  it('the restarted runner removes the folders of tasks that ended before the kill, and keeps those it adopts', async () => {
    const dir = tmp.join('crash');
    mkdirSync(dir);
    const records = join(dir, 'records');
    const gate1 = join(dir, 'gate1');
    const gate2 = join(dir, 'gate2');
    const jobs = join(dir, 'jobs');
    const mk = (taskId: string, command: string): TaskSubmitted => ({
      taskId,
      resource: 'local-resource',
      command,
      cwd: dir,
      env: {},
      gpu: false,
    });
    const wait = (gate: string) => `while [ ! -e ${gate} ]; do sleep 0.05; done`;
    const tasks = [
      mk('ok-before', 'echo ok'),
      mk('bad-before', 'echo bad; exit 4'),
      mk('ends-while-down', `${wait(gate1)}; echo ended`),
      mk('runs-on', `echo early; ${wait(gate2)}; echo late`),
    ];
    const runner = (mode: 'start' | 'recover', keep?: { okMs: number; failedMs: number }) =>
      crashRunner('local-sweep-runner', mode, {
        CRASH_RECORDS: records,
        CRASH_RESOURCE: JSON.stringify(testLocalResource(dir, 4)),
        CRASH_TASKS: JSON.stringify(tasks),
        CRASH_READY: 'ok-before:finished,bad-before:failed,ends-while-down:running,runs-on:running',
        ...(keep ? { CRASH_KEEP: JSON.stringify(keep) } : {}),
      });
    const folder = (id: string) => join(jobs, id);

    // First runner, default keep times (10 minutes, 7 days): its ended folders stay.
    const first = runner('start');
    await first.waitForOutput('ready', 60_000);
    await first.kill9();
    for (const id of ['ok-before', 'bad-before'])
      expect(existsSync(join(folder(id), 'exit'))).toBe(true);
    // One task ends while nobody watches; another goes on.
    writeFileSync(gate1, '');
    await until(
      () => existsSync(join(folder('ends-while-down'), 'exit')),
      'a task ended while the runner was down',
    );

    // Keep times 0: the folders of the tasks that ended before the kill go at the restarted
    // runner's first sweep; the one it adopts still running stays (the one that ended meanwhile
    // may go as soon as its end is recorded, collected from its folder first).
    const second = runner('recover', { okMs: 0, failedMs: 0 });
    await until(
      () => !existsSync(folder('ok-before')) && !existsSync(folder('bad-before')),
      'the restarted runner swept the folders of the tasks ended before the kill',
      60_000,
      () => second.output,
    );
    expect(existsSync(join(folder('runs-on'), 'stdout'))).toBe(true);
    writeFileSync(gate2, '');
    expect(await second.exited()).toBe(0);
    const byId = new Map(new FileHooks(records).load().map((r) => [r.task.taskId, r]));
    expect(Object.fromEntries([...byId].map(([k, r]) => [k, [r.state, r.exitCode]]))).toEqual({
      'ok-before': ['finished', 0],
      'bad-before': ['failed', 4],
      'ends-while-down': ['finished', 0],
      'runs-on': ['finished', 0],
    });
    // Its folder was there to the end: all of its output is in it.
    const runsOn = defined(byId.get('runs-on')?.stdoutPath, 'runs-on stdoutPath');
    expect(readFileSync(runsOn, 'utf8')).toBe('early\nlate\n');

    // Started once more: the task it followed to its end is over, and its folder goes too.
    const third = runner('recover', { okMs: 0, failedMs: 0 });
    expect(await third.exited()).toBe(0);
    expect(existsSync(folder('ends-while-down'))).toBe(false);
    expect(existsSync(folder('runs-on'))).toBe(false);
  });
});
