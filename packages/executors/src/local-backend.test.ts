import {
  chmodSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { TaskRecord, TaskSubmitted } from '@computepods/protocol';
import { defined, isAlive, TempDir, until } from '@computepods/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { IllegalTransitionError, RecordFailedError } from './errors.js';
import type { LocalBackendOptions } from './local-backend.js';
import { localExecutor, testLocalResource } from './test-hooks.js';
import { numberedTasks } from './test-tasks.js';

const tmp = new TempDir('cp-exec-local-');
afterAll(() => tmp[Symbol.dispose]());

function setup(parallel = 2, options: Partial<LocalBackendOptions> = {}) {
  return localExecutor({
    resource: testLocalResource(tmp.path, parallel),
    killGraceMs: 300,
    ...options,
  });
}

const task = numberedTasks('t', 'local-resource', tmp.path);

/** What a runner killed -9 leaves of `t`, started in folder `dir`: its running record, for adopt(). */
function runningRecord(t: TaskSubmitted, dir: string, extra: Partial<TaskRecord> = {}): TaskRecord {
  const time = new Date().toISOString();
  return {
    task: t,
    state: 'running',
    handle: { kind: 'local', dir, startedAt: Date.now() },
    history: [{ state: 'running', time }],
    updated: time,
    ...extra,
  };
}

/** Live processes whose command line holds `marker` as one argument. */
function processesWith(marker: string): number[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .map(Number)
    .filter((pid) => {
      try {
        return (
          isAlive(pid) && readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes(marker)
        );
      } catch {
        return false;
      }
    });
}

describe('local backend', () => {
  it('runs a task through every state, recording each before publishing it', async () => {
    const { ex, hooks } = setup();
    const t = task('echo out; echo err >&2; exit 0');
    await ex.submit(t);
    const done = await ex.wait(t.taskId);
    expect(done.state).toBe('finished');
    expect(done.exitCode).toBe(0);
    expect(hooks.states(t.taskId)).toEqual(['created', 'submitted', 'running', 'finished']);
    expect(done.history.map((h) => h.state)).toEqual([
      'created',
      'submitted',
      'running',
      'finished',
    ]);
    expect(hooks.recordedBeforePublished()).toBe(true);
    expect(hooks.records.get(t.taskId)?.state).toBe('finished');
    expect(readFileSync(defined(done.stdoutPath, 'done.stdoutPath'), 'utf8')).toBe('out\n');
    expect(readFileSync(defined(done.stderrPath, 'done.stderrPath'), 'utf8')).toBe('err\n');
    // the exit code is also on disk, for a runner restarted after a crash
    expect(readFileSync(join(tmp.join('jobs'), t.taskId, 'exit'), 'utf8')).toBe('0\n');
    expect(await ex.logs(t.taskId, 'stderr')).toBe('err\n');
  });

  it('fails a task with its exit code', async () => {
    const { ex, hooks } = setup();
    const t = task('exit 3');
    await ex.submit(t);
    const done = await ex.wait(t.taskId);
    expect(done).toMatchObject({ state: 'failed', exitCode: 3, reason: 'exit code 3' });
    expect(hooks.events.at(-1)).toMatchObject({
      state: 'failed',
      previous: 'running',
      exitCode: 3,
    });
  });

  it('refuses a task: created → failed in one record, published in order, never run', async () => {
    const { ex, hooks } = setup();
    const marker = tmp.join('refused-ran');
    const t = task(`touch ${marker}`);
    const rec = await ex.refuse(t, 'cwd "/x" is outside the runner\'s workspace roots');
    expect(rec).toMatchObject({ state: 'failed', exitCode: null, runner: 'test' });
    expect(rec.reason).toMatch(/outside the runner's workspace roots/);
    expect(hooks.calls.filter((c) => c.taskId === t.taskId)).toEqual([
      { kind: 'record', taskId: t.taskId, state: 'failed', history: ['created', 'failed'] },
      { kind: 'publish', taskId: t.taskId, state: 'created' },
      { kind: 'publish', taskId: t.taskId, state: 'failed' },
    ]);
    expect((await ex.wait(t.taskId)).state).toBe('failed');
    // the same id again, refused or submitted: left as it is, still never run
    expect((await ex.submit(t)).state).toBe('failed');
    expect(existsSync(marker)).toBe(false);
  });

  it('fails a task whose cwd does not exist, saying so', async () => {
    const { ex } = setup();
    const t = task('true', { cwd: tmp.join('no-such-dir') });
    await ex.submit(t);
    const done = await ex.wait(t.taskId);
    expect(done.state).toBe('failed');
    expect(done.reason).toMatch(/could not start the task: .*ENOENT/);
  });

  it('uses cwd and env, passing hostile values literally', async () => {
    const { ex } = setup();
    const pwned = tmp.join('pwned');
    const hostile = `$(touch ${pwned}) \`touch ${pwned}\`; touch ${pwned}\nline2 'q' "dq"`;
    const t = task('pwd; printf %s "$HOSTILE"', { env: { HOSTILE: hostile }, cwd: tmp.path });
    await ex.submit(t);
    const done = await ex.wait(t.taskId);
    expect(done.state).toBe('finished');
    expect(readFileSync(defined(done.stdoutPath, 'done.stdoutPath'), 'utf8')).toBe(
      `${tmp.path}\n${hostile}`,
    );
    expect(existsSync(pwned)).toBe(false);
  });

  it('never runs more tasks at once than parallel_tasks_per_job', async () => {
    const { ex } = setup(2);
    const log = tmp.join('concurrency.log');
    const tasks = Array.from({ length: 6 }, () =>
      task(`echo start >> ${log}; sleep 0.2; echo end >> ${log}`),
    );
    await Promise.all(tasks.map((t) => ex.submit(t)));
    const done = await Promise.all(tasks.map((t) => ex.wait(t.taskId)));
    expect(done.every((d) => d.state === 'finished')).toBe(true);
    let cur = 0;
    let max = 0;
    for (const line of readFileSync(log, 'utf8').trim().split('\n')) {
      cur += line === 'start' ? 1 : -1;
      max = Math.max(max, cur);
    }
    expect(max).toBeLessThanOrEqual(2);
    expect(max).toBeGreaterThanOrEqual(1);
  });

  it('starts each lane’s tasks through a spawner of its own (at most four)', async () => {
    for (const [parallel, spawners] of [
      [1, 1],
      [8, 4],
    ] as const) {
      const s = setup(parallel);
      expect(s.backend.spawnerPids).toHaveLength(spawners);
      await s.ex.close();
    }
    const { ex, backend } = setup(2);
    const gate = tmp.join('gate-lanes');
    const tasks = [0, 1].map(() => task(`while [ ! -e ${gate} ]; do sleep 0.05; done`));
    for (const t of tasks) await ex.submit(t);
    const pidOf = (id: string) => {
      try {
        return Number(readFileSync(join(tmp.join('jobs'), id, 'pid'), 'utf8').split(/\s/)[0]);
      } catch {
        return 0;
      }
    };
    let parents: number[];
    let spawners: number[];
    try {
      await until(() => tasks.every((t) => pidOf(t.taskId) > 0), 'both tasks to start');
      parents = tasks.map((t) => {
        const stat = readFileSync(`/proc/${pidOf(t.taskId)}/stat`, 'utf8');
        return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      });
      spawners = backend.spawnerPids;
    } finally {
      // They end before anything is checked: a failed check must not leave them running.
      writeFileSync(gate, '');
    }
    for (const t of tasks) expect((await ex.wait(t.taskId)).state).toBe('finished');
    await ex.close();
    expect(new Set(parents).size).toBe(2);
    expect([...parents].sort()).toEqual([...spawners].sort());
  });

  it('fails a task that times out and kills its whole process group', async () => {
    const { ex } = setup();
    const pidFile = tmp.join('bg-timeout.pid');
    // Long enough for the task to start on a busy machine; the group is killed all the same.
    const t = task(`sleep 30 & echo $! > ${pidFile}; wait`, { timeoutMs: 1500 });
    await ex.submit(t);
    const done = await ex.wait(t.taskId);
    expect(done).toMatchObject({
      state: 'failed',
      exitCode: null,
      reason: 'timed out after 1500 ms',
    });
    await until(() => existsSync(pidFile), 'pid file');
    const bg = Number(readFileSync(pidFile, 'utf8'));
    await until(() => !isAlive(bg), 'the background child to die');
  });

  it('kills a running task with SIGTERM, then SIGKILL when it ignores SIGTERM', async () => {
    const { ex } = setup();
    const marker = tmp.join('kill-started');
    const t = task(`trap '' TERM; touch ${marker}; while :; do sleep 0.1; done`);
    await ex.submit(t);
    await until(() => existsSync(marker), 'the task to start');
    const pid = defined(ex.get(t.taskId), 'ex.get(t.taskId)');
    expect(pid.state).toBe('running');
    const dir = join(tmp.join('jobs'), t.taskId);
    const wrapperPid = Number(readFileSync(join(dir, 'pid'), 'utf8'));
    const killed = await ex.kill(t.taskId);
    expect(killed.state).toBe('killed');
    await until(() => !isAlive(wrapperPid), 'the wrapper to die');
    // The loop ignores SIGTERM in a subshell of the wrapper: SIGKILL must reach it too.
    await until(() => processesWith(dir).length === 0, 'the whole task group to die');
    expect((await ex.wait(t.taskId)).state).toBe('killed');
    await expect(ex.kill(t.taskId)).rejects.toThrow(IllegalTransitionError);
  });

  it('kills a task recorded running whose pid is not known yet, once it is', async () => {
    const { ex, backend } = setup();
    const t = task('sleep 30');
    await ex.submit(t);
    expect((await ex.kill(t.taskId)).state).toBe('killed');
    // Its wrapper carries the task folder on its command line until it dies.
    const dir = join(tmp.join('jobs'), t.taskId);
    await until(() => (backend.stats().spawned ?? 0) >= 1, 'the spawner to report the pid');
    await until(() => processesWith(dir).length === 0, 'the task group to die');
  });

  it('pauses a waiting task, refuses to pause a running one, and resumes to submitted', async () => {
    const { ex, hooks } = setup(1);
    const gate = tmp.join('gate');
    const blocker = task(`while [ ! -e ${gate} ]; do sleep 0.05; done`);
    const waiting = task('echo resumed');
    await ex.submit(blocker);
    await ex.submit(waiting);
    await until(() => ex.get(blocker.taskId)?.state === 'running', 'blocker running');
    await until(() => ex.get(waiting.taskId)?.state === 'submitted', 'waiting submitted');
    await expect(ex.pause(blocker.taskId)).rejects.toThrow(/cannot be paused; kill it/);
    const paused = await ex.pause(waiting.taskId);
    expect(paused).toMatchObject({ state: 'paused', pausedFrom: 'submitted' });
    await expect(ex.pause(waiting.taskId)).rejects.toThrow(/already paused/);

    writeFileSync(gate, '');
    expect((await ex.wait(blocker.taskId)).state).toBe('finished');
    // the paused task did not start although a slot became free
    await sleep(100);
    expect(ex.get(waiting.taskId)?.state).toBe('paused');
    const resumed = await ex.resume(waiting.taskId);
    expect(resumed.state).toBe('submitted');
    expect(resumed.reason).toBeUndefined();
    expect((await ex.wait(waiting.taskId)).state).toBe('finished');
    expect(hooks.states(waiting.taskId)).toEqual([
      'created',
      'submitted',
      'paused',
      'submitted',
      'running',
      'finished',
    ]);
    await expect(ex.resume(waiting.taskId)).rejects.toThrow(/only a paused task can be resumed/);
  });

  it('kills a queued task without ever starting it', async () => {
    const { ex } = setup(1);
    const gate = tmp.join('gate2');
    const ran = tmp.join('never-ran');
    const blocker = task(`while [ ! -e ${gate} ]; do sleep 0.05; done`);
    const queued = task(`touch ${ran}`);
    await ex.submit(blocker);
    await ex.submit(queued);
    await until(() => ex.get(queued.taskId)?.state === 'submitted', 'queued');
    expect((await ex.kill(queued.taskId)).state).toBe('killed');

    writeFileSync(gate, '');
    await ex.wait(blocker.taskId);
    await sleep(100);
    expect(existsSync(ran)).toBe(false);
  });

  it('returns the existing record when the same task id is submitted again', async () => {
    const { ex } = setup();
    const count = tmp.join('count-dup');
    const t = task(`echo x >> ${count}`);
    const a = await ex.submit(t);
    const b = await ex.submit(t);
    expect(b.task.taskId).toBe(a.task.taskId);
    await ex.wait(t.taskId);
    await ex.submit(t);
    await sleep(50);
    expect(readFileSync(count, 'utf8')).toBe('x\n');
  });

  it('does not act on a transition it could not record', async () => {
    const { ex, hooks } = setup();
    hooks.failRecords = true;
    const ran = tmp.join('ran-unrecorded');
    const t = task(`touch ${ran}`);
    await expect(ex.submit(t)).rejects.toThrow(RecordFailedError);
    await sleep(100);
    expect(ex.get(t.taskId)).toBeUndefined();
    expect(existsSync(ran)).toBe(false);
    expect(hooks.events).toHaveLength(0);
  });

  it('never runs a queued task whose record someone else changed, and does not try again', async () => {
    // One slot: the second task waits in the backend's queue and is recorded running only
    // when the first ends, through the queue (the path a runner that was frozen takes).
    const { ex, hooks } = setup(1);
    const gate = tmp.join('gate-taken');
    const first = task(`while [ ! -e ${gate} ]; do sleep 0.05; done`);
    const ran = tmp.join('ran-taken');
    const second = task(`touch ${ran}`);
    let runningWrites = 0;
    const record = hooks.record.bind(hooks);
    hooks.record = async (rec) => {
      if (rec.task.taskId !== second.taskId || rec.state !== 'running') return record(rec);
      runningWrites++;
      // What the runner's KV write throws when the revision moved on (MajorDomo re-queued or
      // failed the task of a runner it took for dead).
      throw Object.assign(new Error('wrong last sequence (test)'), { retryable: false });
    };
    await ex.submit(first);
    await ex.submit(second);
    expect(ex.get(second.taskId)?.state).toBe('submitted');
    writeFileSync(gate, '');
    await until(
      () => hooks.logs.includes('task record changed elsewhere; not running this copy'),
      'the backend to drop the task whose record moved on',
    );
    expect(hooks.logs).not.toContain('could not record a task as running; it stays queued');
    expect(runningWrites).toBe(1);
    expect(existsSync(ran)).toBe(false);
  });

  it('serves the log of a running task', async () => {
    const { ex } = setup();
    const gate = tmp.join('gate3');
    const t = task(`echo first; while [ ! -e ${gate} ]; do sleep 0.05; done; echo second`);
    await ex.submit(t);
    await until(() => ex.get(t.taskId)?.state === 'running', 'running');
    let log = '';
    await until(() => {
      void ex.logs(t.taskId).then((l) => {
        log = l;
      });
      return log === 'first\n';
    }, 'first line');

    writeFileSync(gate, '');
    await ex.wait(t.taskId);
    expect(await ex.logs(t.taskId)).toBe('first\nsecond\n');
    expect(await ex.logs(t.taskId, 'stdout', 7)).toBe('second\n');
  });

  it('after a restart, starts once a task recorded running whose process never started', async () => {
    const { ex } = setup(2, { startGraceMs: 200, pollMs: 50 });
    const count = tmp.join('count-late-start');
    const t = task(`echo x >> ${count}`);
    const dir = join(tmp.join('jobs'), t.taskId);
    await ex.adopt([
      runningRecord(t, dir, { stdoutPath: join(dir, 'stdout'), stderrPath: join(dir, 'stderr') }),
    ]);
    const done = await ex.wait(t.taskId);
    expect(done.state).toBe('finished');
    expect(readFileSync(count, 'utf8')).toBe('x\n');
    expect(ex.stats().startedAfterRestart).toBe(1);
  });

  it('after a restart, fails a task whose process vanished without an exit code', async () => {
    const { ex } = setup(2, { pollMs: 50 });
    const t = task('true');
    const dir = join(tmp.join('jobs'), t.taskId);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'pid'), '999999999\n');
    await ex.adopt([runningRecord(t, dir)]);
    const done = await ex.wait(t.taskId);
    expect(done).toMatchObject({ state: 'failed', exitCode: null });
    expect(done.reason).toMatch(/ended without writing an exit code/);
  });

  it('after a restart, follows a task started without a wrapper by its pid and start time, and collects its exit', async () => {
    const first = setup(2);
    const gate = tmp.join('gate-direct-restart');
    const script = tmp.join('wait-gate-restart');
    writeFileSync(script, `#!/bin/sh\nwhile [ ! -e ${gate} ]; do sleep 0.05; done\nexit 6\n`);
    chmodSync(script, 0o755);
    const t = task(script);
    await first.ex.submit(t);
    const pidFile = join(tmp.join('jobs'), t.taskId, 'pid');
    await until(() => existsSync(pidFile), 'the task to start');
    expect(readFileSync(pidFile, 'utf8')).toMatch(/^\d+ \d+\n$/);
    const rec = defined(first.ex.get(t.taskId), 'the running record');
    // The runner goes; its spawner stays until its task has ended (as after kill -9).
    await first.ex.close();
    const second = setup(2, { pollMs: 50, startGraceMs: 100 });
    await second.ex.adopt([rec]);
    // Many polls and more than its grace for a missing exit file: still running, it is ours.
    await sleep(600);
    expect(second.ex.get(t.taskId)?.state).toBe('running');
    writeFileSync(gate, '');
    expect(await second.ex.wait(t.taskId)).toMatchObject({ state: 'failed', exitCode: 6 });
    expect(second.ex.stats().collectedAfterRestart).toBe(1);
    await second.ex.close();
  });

  it('after a restart, never starts again a task whose spawner died between its spawn and its pid file', async () => {
    const { ex } = setup(2, { startGraceMs: 200, pollMs: 50 });
    const ran = tmp.join('ran-no-pid');
    const t = task(`touch ${ran}`);
    const dir = join(tmp.join('jobs'), t.taskId);
    // What such a spawn leaves: the output files the task's process opened, no pid file.
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'stdout'), '');
    writeFileSync(join(dir, 'stderr'), '');
    await ex.adopt([runningRecord(t, dir)]);
    const done = await ex.wait(t.taskId);
    expect(done).toMatchObject({ state: 'failed', exitCode: null });
    expect(done.reason).toMatch(/spawner died as it started the task.*not started again/);
    expect(existsSync(ran)).toBe(false);
    expect(ex.stats().startedAfterRestart).toBe(0);
  });

  it('when its spawner is killed -9, a task it started without a wrapper is followed and recorded without an exit code; the rest run once', async () => {
    const { ex, backend } = setup(2, { pollMs: 50, startGraceMs: 300 });
    const gate = tmp.join('gate-direct');
    const runs = tmp.join('runs-direct');
    mkdirSync(runs);
    // A plain command (a script's path and plain words): the spawner starts it without sh.
    const script = tmp.join('wait-gate');
    writeFileSync(
      script,
      '#!/bin/sh\necho run >> "$1"\nwhile [ ! -e "$2" ]; do sleep 0.05; done\nexit "$3"\n',
    );
    chmodSync(script, 0o755);
    const mk = (code: number) => {
      const t = task('');
      return { ...t, command: `${script} ${join(runs, t.taskId)} ${gate} ${code}` };
    };
    const tasks = [mk(0), mk(3), mk(0), mk(4)];
    for (const t of tasks) await ex.submit(t);
    const pidText = (id: string) => {
      try {
        return readFileSync(join(tmp.join('jobs'), id, 'pid'), 'utf8');
      } catch {
        return '';
      }
    };
    await until(
      () => tasks.slice(0, 2).every((t) => /^\d+ \d+\n$/.test(pidText(t.taskId))),
      'the first two tasks to start, without a wrapper',
    );
    const pids = tasks.slice(0, 2).map((t) => Number(pidText(t.taskId).split(' ')[0]));
    const spawners = backend.spawnerPids;
    expect(spawners.length).toBeGreaterThan(0);
    for (const pid of spawners) process.kill(pid, 'SIGKILL');
    await until(() => !spawners.some(isAlive), 'the spawners to die');
    // Orphaned, they go on.
    for (const pid of pids) expect(isAlive(pid)).toBe(true);
    writeFileSync(gate, '');
    const done = await Promise.all(tasks.map((t) => ex.wait(t.taskId)));
    // The first two ran to their end, but nobody could see how: failed, saying so.
    for (const d of done.slice(0, 2)) {
      expect(d).toMatchObject({ state: 'failed', exitCode: null });
      expect(d.reason).toMatch(/ended without writing an exit code/);
    }
    expect(done.slice(2).map((d) => [d.state, d.exitCode])).toEqual([
      ['finished', 0],
      ['failed', 4],
    ]);
    for (const t of tasks) expect(readFileSync(join(runs, t.taskId), 'utf8')).toBe('run\n');
    for (const pid of backend.spawnerPids) expect(spawners).not.toContain(pid);
    await ex.close();
  });

  it('when its spawner is killed -9, follows the running tasks through their folders, starts the rest under a new one, runs nothing twice', async () => {
    const { ex, backend } = setup(2, { pollMs: 50, startGraceMs: 300 });
    const gate = tmp.join('gate-spawner');
    const runs = tmp.join('runs-spawner');
    mkdirSync(runs);
    const mk = (body: string) => {
      const t = task('');
      return { ...t, command: `echo run >> ${join(runs, t.taskId)}; ${body}` };
    };
    const wait = `while [ ! -e ${gate} ]; do sleep 0.05; done`;
    const tasks = [mk(`${wait}; exit 0`), mk(`${wait}; exit 3`), mk('exit 0'), mk('exit 4')];
    for (const t of tasks) await ex.submit(t);
    const pidFile = (id: string) => join(tmp.join('jobs'), id, 'pid');
    await until(
      () =>
        existsSync(pidFile(defined(tasks[0], 'tasks[0]').taskId)) &&
        existsSync(pidFile(defined(tasks[1], 'tasks[1]').taskId)),
      'the first two tasks to start',
    );
    const spawners = backend.spawnerPids;
    expect(spawners.length).toBeGreaterThan(0);
    for (const pid of spawners) process.kill(pid, 'SIGKILL');
    await until(() => !spawners.some(isAlive), 'the spawners to die');
    writeFileSync(gate, '');
    const done = await Promise.all(tasks.map((t) => ex.wait(t.taskId)));
    expect(done.map((d) => [d.state, d.exitCode])).toEqual([
      ['finished', 0],
      ['failed', 3],
      ['finished', 0],
      ['failed', 4],
    ]);
    for (const t of tasks) expect(readFileSync(join(runs, t.taskId), 'utf8')).toBe('run\n');
    for (const pid of backend.spawnerPids) expect(spawners).not.toContain(pid);
    await ex.close();
  });
});
