import {
  existsSync,
  mkdirSync,
  readFileSync,
  readlinkSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import type { TaskRecord, TaskSubmitted } from '@computepods/protocol';
import { isAlive, TempDir, until } from '@computepods/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import type { Executor } from './executor.js';
import { LoopLiveness } from './liveness.js';
import type { LocalBackendOptions } from './local-backend.js';
import { Spawner } from './spawner.js';
import { fenceLife, folderLife, retiredClaim } from './task-life.js';
import { localExecutor, type RecordingHooks, testLocalResource } from './test-hooks.js';
import { numberedTasks } from './test-tasks.js';

// A queued local task started before its running record is stored (the runner's liveness
// epoch did not move since it was queued), and what keeps that safe: a record that went
// elsewhere kills the copy at once; a stall sends the task back to recording first.
const tmp = new TempDir('cp-exec-early-');
afterAll(() => tmp[Symbol.dispose]());

// A stall this long is far beyond what a busy test machine shows, unless a test makes one.
function setup(options: Partial<LocalBackendOptions> = {}, stallMs = 5_000) {
  const liveness = new LoopLiveness({ stallMs });
  const { hooks, ex, backend } = localExecutor(
    { resource: testLocalResource(tmp.path, 1), killGraceMs: 300, liveness, ...options },
    { runner: options.runner ?? 'test', runnerInstance: options.runnerInstance },
  );
  return { hooks, ex, liveness, backend };
}

const task = numberedTasks('e', 'local-resource', tmp.path);

/** A task holding the one slot until `gate` exists. */
function blocker(gate: string): TaskSubmitted {
  return task(`while [ ! -e ${gate} ]; do sleep 0.02; done`);
}

/**
 * `command` queued behind a task that holds the one lane until its gate opens, then run as the
 * lane frees (before its running record): its record once it has ended.
 */
async function queuedBehindBlocker(ex: Executor, name: string, command: string) {
  const gate = tmp.join(`gate-${name}`);
  const first = blocker(gate);
  const second = task(command);
  await ex.submit(first);
  await ex.submit(second);
  writeFileSync(gate, '');
  return { second, done: await ex.wait(second.taskId) };
}

/**
 * A gated task holding the one lane and `true` queued behind it (started as the first ends, its
 * pid coming with its exit): the event-loop turn each one's finished record was written in.
 */
async function endTurnsBehindBlocker(ex: Executor, hooks: RecordingHooks, name: string) {
  let turn = 0;
  let counting = true;
  const tick = () => {
    turn++;
    if (counting) setImmediate(tick);
  };
  tick();
  const turns = new Map<string, number>();
  const record = hooks.record.bind(hooks);
  hooks.record = async (rec: TaskRecord) => {
    if (rec.state === 'finished') turns.set(rec.task.taskId, turn);
    return record(rec);
  };
  const gate = tmp.join(`gate-${name}`);
  const first = blocker(gate);
  const quick = task('true');
  await ex.submit(first);
  await ex.submit(quick);
  writeFileSync(gate, '');
  for (const t of [first, quick]) expect((await ex.wait(t.taskId)).state).toBe('finished');
  counting = false;
  return { first: turns.get(first.taskId), quick: turns.get(quick.taskId) };
}

/** Holds the running record writes of `taskId` until released; `conflict` rejects them as KV does. */
function holdRunning(hooks: RecordingHooks, taskId: string) {
  const record = hooks.record.bind(hooks);
  let release: (how: 'store' | 'conflict') => void = () => {};
  const released = new Promise<'store' | 'conflict'>((r) => {
    release = r;
  });
  let held = 0;
  hooks.record = async (rec: TaskRecord) => {
    if (rec.task.taskId !== taskId || rec.state !== 'running') return record(rec);
    held++;
    if ((await released) === 'conflict')
      throw Object.assign(new Error('wrong last sequence (test)'), { retryable: false });
    return record(rec);
  };
  return { release, held: () => held };
}

/**
 * The folder a run of `t` left, claimed for the life `life` (task-life.ts), its stdout `stdout`
 * and its exit 3: what a runner killed -9 after the spawn leaves, or an id's earlier run.
 */
function leftFolder(t: TaskSubmitted, life: string, stdout: string): string {
  const dir = join(tmp.join('jobs'), t.taskId);
  mkdirSync(dir, { recursive: true });
  symlinkSync(life, join(dir, 'life'));
  writeFileSync(join(dir, 'stdout'), stdout);
  writeFileSync(join(dir, 'exit'), '3\n');
  return dir;
}

/** The record of `t` submitted (created and queued) at `time`, never recorded running. */
function submittedAt(t: TaskSubmitted, time: string): TaskRecord {
  return {
    task: t,
    state: 'submitted',
    history: [
      { state: 'created', time },
      { state: 'submitted', time },
    ],
    updated: time,
  };
}

describe('local backend: starting before the running record', { timeout: 60_000 }, () => {
  it('starts a queued task as its lane frees, its running record stored alongside, recorded in order', async () => {
    const { ex, hooks, backend, liveness } = setup();
    const gate = tmp.join('gate-early');
    const ran = tmp.join('ran-early');
    const first = blocker(gate);
    // Longer than the spawner's pid hold (0.1 s): its pid comes alone, and its running write.
    const second = task(`echo $$ > ${ran}; sleep 0.3`);
    const hold = holdRunning(hooks, second.taskId);
    await ex.submit(first);
    await ex.submit(second);
    expect(ex.get(second.taskId)?.state).toBe('submitted');
    writeFileSync(gate, '');
    // It runs while its running record is held back.
    await until(() => existsSync(ran) && hold.held() === 1, 'the task to run before its record');
    expect(ex.get(second.taskId)?.state).toBe('submitted');
    hold.release('store');
    const done = await ex.wait(second.taskId);
    expect([done.state, done.exitCode]).toEqual(['finished', 0]);
    expect(done.history.map((h) => h.state)).toEqual([
      'created',
      'submitted',
      'running',
      'finished',
    ]);
    expect(hooks.states(second.taskId)).toEqual(['created', 'submitted', 'running', 'finished']);
    expect(hooks.recordedBeforePublished()).toBe(true);
    expect(backend.stats().startedBeforeRecord).toBe(1);
    await ex.close();
    liveness.close();
  });

  it('records a queued task that ended before its pid came running and ended in one write', async () => {
    const { ex, hooks, backend, liveness } = setup();
    const { second, done } = await queuedBehindBlocker(ex, 'one-write', 'exit 3');
    expect([done.state, done.exitCode]).toEqual(['failed', 3]);
    expect(done.history.map((h) => h.state)).toEqual(['created', 'submitted', 'running', 'failed']);
    expect(done.handle).toMatchObject({
      kind: 'local',
      dir: join(tmp.join('jobs'), second.taskId),
    });
    expect(done.stdoutPath).toBe(join(tmp.join('jobs'), second.taskId, 'stdout'));
    // Two writes: created and submitted, then running and its end.
    const writes = hooks.calls.filter((c) => c.kind === 'record' && c.taskId === second.taskId);
    expect(writes.map((w) => w.state)).toEqual(['submitted', 'failed']);
    expect(hooks.states(second.taskId)).toEqual(['created', 'submitted', 'running', 'failed']);
    expect(hooks.recordedBeforePublished()).toBe(true);
    expect(backend.stats().startedBeforeRecord).toBe(1);
    await ex.close();
    liveness.close();
  });

  it('stamps a task started before its running record at its start, also when its end comes in the same write', async () => {
    const { ex, liveness } = setup();
    // Ends within the spawner's pid hold (0.1 s), usually recorded running with its end; a pause
    // its history must show either way.
    const { done } = await queuedBehindBlocker(ex, 'stamp', 'sleep 0.05; exit 3');
    const at = (state: string) =>
      Date.parse(done.history.find((h) => h.state === state)?.time ?? '');
    expect(done.history.map((h) => h.state)).toEqual(['created', 'submitted', 'running', 'failed']);
    // When it took its lane, not when the record was written.
    expect(at('running')).toBe(done.handle?.startedAt);
    expect(at('failed') - at('running')).toBeGreaterThanOrEqual(50);
    await ex.close();
    liveness.close();
  });

  it("records a task's end with the next one's in one turn when that one started before its record", async () => {
    const { ex, hooks, liveness } = setup({ endHoldMs: 60_000 });
    const turns = await endTurnsBehindBlocker(ex, hooks, 'together');
    // first's end waited for quick's (started before its record, its pid not come yet).
    expect(turns.first).toBe(turns.quick);
    expect(hooks.recordedBeforePublished()).toBe(true);
    await ex.close();
    liveness.close();
  });

  it("records a task's end at once after a task that ran a while: no wait for the next one's", async () => {
    const { ex, hooks, liveness } = setup({ endHoldMs: 60_000 });
    // Ran 50 ms: the tasks here are no no-ops, so the next started is not likely to end soon.
    const before = task('sleep 0.05');
    await ex.submit(before);
    expect((await ex.wait(before.taskId)).state).toBe('finished');
    const turns = await endTurnsBehindBlocker(ex, hooks, 'not-together');
    // first's end went before quick's (started before its record as first ended).
    expect(turns.first).toBeLessThan(turns.quick ?? 0);
    expect(hooks.recordedBeforePublished()).toBe(true);
    await ex.close();
    liveness.close();
  });

  it('records nothing for a copy that ended before its pid came when its record went elsewhere, and removes its folder', async () => {
    const { ex, hooks, liveness } = setup();
    const gate = tmp.join('gate-one-write-conflict');
    const ran = tmp.join('ran-one-write-conflict');
    const first = blocker(gate);
    const second = task(`echo ran > ${ran}`);
    const third = task('exit 0');
    const record = hooks.record.bind(hooks);
    hooks.record = async (rec: TaskRecord) => {
      if (rec.task.taskId === second.taskId && rec.state !== 'submitted')
        throw Object.assign(new Error('wrong last sequence (test)'), { retryable: false });
      return record(rec);
    };
    for (const t of [first, second, third]) await ex.submit(t);
    writeFileSync(gate, '');
    expect((await ex.wait(third.taskId)).state).toBe('finished');
    await until(
      () => hooks.logs.includes('task record changed elsewhere; the copy started here has ended'),
      'the one write to conflict',
      5_000,
    );
    expect(readFileSync(ran, 'utf8')).toBe('ran\n');
    expect(existsSync(join(tmp.join('jobs'), second.taskId))).toBe(false);
    expect(ex.get(second.taskId)?.state).toBe('submitted');
    expect(hooks.states(second.taskId)).toEqual(['created', 'submitted']);
    await ex.close();
    liveness.close();
  });

  it('kills at once the copy started before its record when the record went elsewhere, and frees its lane', async () => {
    const { ex, hooks, liveness } = setup();
    const gate = tmp.join('gate-conflict');
    const pidFile = tmp.join('pid-conflict');
    const first = blocker(gate);
    // Runs for a minute unless killed; SIGTERM alone would not end it.
    const second = task(`trap '' TERM; echo $$ > ${pidFile}; sleep 60 & wait; sleep 60`);
    const third = task('exit 0');
    const hold = holdRunning(hooks, second.taskId);
    for (const t of [first, second, third]) await ex.submit(t);
    writeFileSync(gate, '');
    await until(() => existsSync(pidFile) && hold.held() === 1, 'the copy to run');
    const pid = Number(readFileSync(pidFile, 'utf8'));
    // MajorDomo took the task from this runner meanwhile: the write conflicts.
    hold.release('conflict');
    await until(() => !isAlive(pid), 'the copy to be killed', 5_000);
    expect(hooks.logs).toContain('task record changed elsewhere; killing the copy started here');
    // Its folder goes with it: nothing is read from it.
    await until(
      () => !existsSync(join(tmp.join('jobs'), second.taskId)),
      "the killed copy's folder to go",
      5_000,
    );
    // Its lane is free: the next task runs, and nothing is recorded for the dropped copy.
    expect((await ex.wait(third.taskId)).state).toBe('finished');
    expect(ex.get(second.taskId)?.state).toBe('submitted');
    expect(hooks.states(second.taskId)).toEqual(['created', 'submitted']);
    await ex.close();
    liveness.close();
  });

  it('a task paused while the running write of its early copy is retried, then resumed, runs anew: not following the killed copy', async () => {
    const { ex, hooks, liveness } = setup();
    const gate = tmp.join('gate-pause');
    const runs = tmp.join('runs-pause');
    const done = tmp.join('done-pause');
    const first = blocker(gate);
    const second = task(`echo $$ >> ${runs}; sleep 2; echo done >> ${done}`);
    // The store cannot be reached for the running writes of `second` until told.
    const record = hooks.record.bind(hooks);
    let unreachable = true;
    hooks.record = async (rec: TaskRecord) => {
      if (unreachable && rec.task.taskId === second.taskId && rec.state === 'running')
        throw Object.assign(new Error('no responders (test)'), { retryable: true });
      return record(rec);
    };
    await ex.submit(first);
    await ex.submit(second);
    writeFileSync(gate, '');
    await until(() => existsSync(runs), 'the early copy to run');
    await until(
      () => hooks.logs.includes('could not record a started task as running; trying again'),
      'its running write to be tried again',
    );
    await ex.pause(second.taskId);
    const killed = Number(readFileSync(runs, 'utf8'));
    await until(() => !isAlive(killed), 'the early copy to be killed', 5_000);
    unreachable = false;
    await ex.resume(second.taskId);
    const end = await ex.wait(second.taskId);
    expect([end.state, end.exitCode]).toEqual(['finished', 0]);
    expect(readFileSync(runs, 'utf8').trim().split('\n')).toHaveLength(2);
    expect(readFileSync(done, 'utf8')).toBe('done\n');
    expect(hooks.states(second.taskId)).toEqual([
      'created',
      'submitted',
      'paused',
      'submitted',
      'running',
      'finished',
    ]);
    await ex.close();
    liveness.close();
  });

  it('after a stall of the event loop, records a queued task running first: a record that went elsewhere never runs', async () => {
    const { ex, hooks, backend, liveness } = setup({}, 200);
    const gate = tmp.join('gate-stall');
    const ran = tmp.join('ran-stall');
    const first = blocker(gate);
    const second = task(`touch ${ran}`);
    const hold = holdRunning(hooks, second.taskId);
    await ex.submit(first);
    await ex.submit(second);
    // Frozen (a SIGSTOP, a blocked loop) past the stall limit while the task waited: MajorDomo
    // may have taken it meanwhile.
    const end = performance.now() + 300;
    while (performance.now() < end) {}
    writeFileSync(gate, '');
    await until(() => hold.held() === 1, 'the running record to be written');
    await new Promise((r) => setTimeout(r, 200));
    expect(existsSync(ran)).toBe(false);
    hold.release('conflict');
    await until(
      () => hooks.logs.includes('task record changed elsewhere; not running this copy'),
      'the task to be dropped',
    );
    await new Promise((r) => setTimeout(r, 200));
    expect(existsSync(ran)).toBe(false);
    expect(backend.stats().startedBeforeRecord).toBe(0);
    await ex.close();
    liveness.close();
  });

  it('after a restart, follows a task recorded submitted whose folder is there, and never starts it again', async () => {
    const { ex, hooks, backend, liveness } = setup({ pollMs: 50, startGraceMs: 300 });
    const count = tmp.join('count-unrecorded');
    const t = task(`echo x >> ${count}`);
    // What a runner killed -9 between the spawn and the running record leaves: the record
    // submitted, the task run to its end in its folder by the old spawner.
    const time = new Date().toISOString();
    // Claimed for this life of the record (task-life.ts: its submitted time).
    const dir = leftFolder(t, time, 'x\n');
    await ex.adopt([submittedAt(t, time)]);
    const done = await ex.wait(t.taskId);
    expect([done.state, done.exitCode]).toEqual(['failed', 3]);
    expect(done.history.map((h) => h.state)).toEqual(['created', 'submitted', 'running', 'failed']);
    expect(done.stdoutPath).toBe(join(dir, 'stdout'));
    expect(existsSync(count)).toBe(false);
    // Followed from the start, not found claimed by a start of its own.
    expect(backend.stats().claimedElsewhere).toBe(0);
    expect(hooks.logs).not.toContain(
      'task folder claimed by another start: following it, not starting again',
    );
    await ex.close();
    liveness.close();
  });

  it('after a restart, starts a task recorded submitted whose folder is of another life of its id (its old record expired), in that folder emptied', async () => {
    const { ex, backend, liveness } = setup({ pollMs: 50, startGraceMs: 300 });
    const count = tmp.join('count-other-life');
    const t = task(`echo x >> ${count}`);
    // The id's last run, whose record expired while its failed folder stayed.
    const dir = leftFolder(t, '2026-01-01T00:00:00.000Z', 'old\n');
    const time = new Date().toISOString();
    await ex.adopt([submittedAt(t, time)]);
    const done = await ex.wait(t.taskId);
    expect([done.state, done.exitCode]).toEqual(['finished', 0]);
    expect(readFileSync(count, 'utf8')).toBe('x\n');
    expect(readFileSync(join(dir, 'stdout'), 'utf8')).toBe('');
    expect(readlinkSync(join(dir, 'life'))).toBe(time);
    expect(backend.stats().claimedElsewhere).toBe(0);
    await ex.close();
    liveness.close();
  });
});

/**
 * A task MajorDomo queued again (attempt 2) after the runner it waited with stopped answering:
 * the record it had then, created again without a runner, naming that runner in its handle.
 */
function requeued(
  t: TaskSubmitted,
  life: string,
  deadRunner: string,
  instances?: string[],
): TaskRecord {
  const now = new Date().toISOString();
  return {
    task: { ...t, attempt: 2 },
    state: 'created',
    handle: { kind: 'requeued', runner: deadRunner, ...(instances ? { instances } : {}) },
    reason: `runner ${deadRunner} stopped answering at ${life}; the task had not started and is queued again`,
    history: [
      { state: 'created', time: life },
      { state: 'submitted', time: life },
      { state: 'created', time: now },
    ],
    updated: now,
  };
}

/**
 * A runner that kept its task folders in the test's jobs folder (marked there at adopt, by its
 * process `runnerInstance` when given).
 */
async function ranHere(runner: string, runnerInstance?: string): Promise<void> {
  const { ex, liveness } = setup({ runner, ...(runnerInstance ? { runnerInstance } : {}) });
  await ex.adopt([]);
  await ex.close();
  liveness.close();
}

describe('local backend: a task queued again after its runner stopped answering', {
  timeout: 60_000,
}, () => {
  it('follows the copy the dead runner started in this jobs folder, records its end, and never starts it again', async () => {
    await ranHere('dead-1');
    const { ex, hooks, backend, liveness } = setup({ runner: 'live-1', pollMs: 50 });
    const count = tmp.join('count-followed');
    const t = task(`echo x >> ${count}`);
    const life = new Date(Date.now() - 10_000).toISOString();
    // What the dead runner's early start left: its folder claimed for that life, its exit.
    const dir = leftFolder(t, life, 'x\n');
    const prior = requeued(t, life, 'dead-1');
    await ex.submitRequeued(prior.task, prior);
    const done = await ex.wait(t.taskId);
    expect([done.state, done.exitCode]).toEqual(['failed', 3]);
    expect(done.runner).toBe('live-1');
    expect(done.task.attempt).toBe(2);
    expect(done.handle).toMatchObject({ kind: 'local', dir });
    expect(done.history.map((h) => h.state)).toEqual([
      'created',
      'submitted',
      'created',
      'submitted',
      'running',
      'failed',
    ]);
    expect(existsSync(count)).toBe(false);
    expect(backend.stats().followedEarlier).toBe(1);
    expect(hooks.logs).toContain(
      'task queued again was started by the runner before: following it',
    );
    await ex.close();
    liveness.close();
  });

  it('runs a task the dead runner never started, its folder first claimed for the life that runner had', async () => {
    await ranHere('dead-2');
    const { ex, liveness } = setup({ runner: 'live-2' });
    const count = tmp.join('count-fenced');
    const t = task(`echo x >> ${count}`);
    const life = new Date(Date.now() - 10_000).toISOString();
    const prior = requeued(t, life, 'dead-2');
    await ex.submitRequeued(prior.task, prior);
    const done = await ex.wait(t.taskId);
    expect([done.state, done.exitCode]).toEqual(['finished', 0]);
    expect(readFileSync(count, 'utf8')).toBe('x\n');
    // Its own start took the folder for its own life.
    const dir = join(tmp.join('jobs'), t.taskId);
    expect(readlinkSync(join(dir, 'life'))).not.toBe(life);
    await ex.close();
    liveness.close();
  });

  it('runs a task whose folder is of an older life of its id, not claimed by the dead runner', async () => {
    await ranHere('dead-3');
    const { ex, liveness } = setup({ runner: 'live-3' });
    const count = tmp.join('count-stale');
    const t = task(`echo x >> ${count}`);
    const dir = leftFolder(t, '2026-01-01T00:00:00.000Z', 'old\n');
    const life = new Date(Date.now() - 10_000).toISOString();
    const prior = requeued(t, life, 'dead-3');
    await ex.submitRequeued(prior.task, prior);
    const done = await ex.wait(t.taskId);
    expect([done.state, done.exitCode]).toEqual(['finished', 0]);
    expect(readFileSync(count, 'utf8')).toBe('x\n');
    expect(readFileSync(join(dir, 'stdout'), 'utf8')).toBe('');
    await ex.close();
    liveness.close();
  });

  it('fails, naming the dead runner, a task whose runner kept its folders elsewhere: never run', async () => {
    const { ex, hooks, liveness } = setup({ runner: 'live-4' });
    const count = tmp.join('count-elsewhere');
    const t = task(`echo x >> ${count}`);
    const life = new Date(Date.now() - 10_000).toISOString();
    const prior = requeued(t, life, 'elsewhere-4');
    const rec = await ex.submitRequeued(prior.task, prior);
    expect(rec.state).toBe('failed');
    expect(rec.reason).toMatch(/^runner elsewhere-4 stopped answering .*not run again$/);
    expect(rec.reason).toContain(tmp.join('jobs'));
    expect(hooks.states(t.taskId)).toEqual(['created', 'failed']);
    expect(existsSync(join(tmp.join('jobs'), t.taskId))).toBe(false);
    expect(existsSync(count)).toBe(false);
    await ex.close();
    liveness.close();
  });

  it('fails a task whose runner id marked this jobs folder from another process than the one last heard: the id was reused elsewhere', async () => {
    // Runner id reused-6 kept its folders here once (process proc-a); MajorDomo last heard it as
    // process proc-b, which may have kept them on another machine: the mark cannot tell.
    await ranHere('reused-6', 'proc-a');
    const { ex, liveness } = setup({ runner: 'live-6' });
    const count = tmp.join('count-reused');
    const t = task(`echo x >> ${count}`);
    const life = new Date(Date.now() - 10_000).toISOString();
    const prior = requeued(t, life, 'reused-6', ['proc-b']);
    const rec = await ex.submitRequeued(prior.task, prior);
    expect(rec.state).toBe('failed');
    expect(rec.reason).toMatch(/^runner reused-6 stopped answering .*not run again$/);
    expect(existsSync(join(tmp.join('jobs'), t.taskId))).toBe(false);
    expect(existsSync(count)).toBe(false);
    await ex.close();
    liveness.close();
  });

  it('looks in this jobs folder when its mark was written by the process last heard', async () => {
    await ranHere('dead-7', 'proc-c');
    const { ex, liveness } = setup({ runner: 'live-7' });
    const count = tmp.join('count-heard');
    const t = task(`echo x >> ${count}`);
    const life = new Date(Date.now() - 10_000).toISOString();
    const prior = requeued(t, life, 'dead-7', ['proc-x', 'proc-c']);
    await ex.submitRequeued(prior.task, prior);
    const done = await ex.wait(t.taskId);
    expect([done.state, done.exitCode]).toEqual(['finished', 0]);
    expect(readFileSync(count, 'utf8')).toBe('x\n');
    await ex.close();
    liveness.close();
  });

  it('runs a task queued again that was never submitted (created only), wherever its runner was', async () => {
    const { ex, liveness } = setup({ runner: 'live-5' });
    const t = task('exit 0');
    const time = new Date().toISOString();
    const prior: TaskRecord = {
      task: { ...t, attempt: 2 },
      state: 'created',
      handle: { kind: 'requeued', runner: 'elsewhere-5' },
      history: [
        { state: 'created', time },
        { state: 'created', time },
      ],
      updated: time,
    };
    await ex.submitRequeued(prior.task, prior);
    expect((await ex.wait(t.taskId)).state).toBe('finished');
    await ex.close();
    liveness.close();
  });

  it('names this runner process in every record it writes, in place of the one before on a task queued again', async () => {
    const { ex, hooks, liveness } = setup({ runner: 'live-8', runnerInstance: 'proc-8' });
    const written: Array<[string, string | undefined]> = [];
    const record = hooks.record.bind(hooks);
    hooks.record = (rec) => {
      written.push([rec.state, rec.runnerInstance]);
      return record(rec);
    };
    const t = task('exit 0');
    await ex.submit(t);
    expect((await ex.wait(t.taskId)).state).toBe('finished');
    // A record of the attempt before, written by its runner's process (MajorDomo drops the name
    // when it queues a task again; were it kept, it is not this runner's).
    const again = task('exit 0');
    const time = new Date().toISOString();
    await ex.submitRequeued(
      { ...again, attempt: 2 },
      {
        task: { ...again, attempt: 2 },
        state: 'created',
        runner: 'gone-8',
        runnerInstance: 'proc-gone',
        handle: { kind: 'requeued', runner: 'gone-8' },
        history: [{ state: 'created', time }],
        updated: time,
      },
    );
    expect((await ex.wait(again.taskId)).state).toBe('finished');
    expect(written.length).toBeGreaterThanOrEqual(4);
    expect(written.filter(([, who]) => who !== 'proc-8')).toEqual([]);
    expect(hooks.records.get(again.taskId)).toMatchObject({
      runner: 'live-8',
      runnerInstance: 'proc-8',
    });
    // Adopted after a restart: written by the process before, named by this one once it writes.
    const adopted = task('exit 0');
    await ex.adopt([
      {
        task: adopted,
        state: 'created',
        runner: 'live-8',
        runnerInstance: 'proc-before',
        history: [{ state: 'created', time }],
        updated: time,
      },
    ]);
    expect(await ex.wait(adopted.taskId)).toMatchObject({
      state: 'finished',
      runnerInstance: 'proc-8',
    });
    await ex.close();
    liveness.close();
  });

  it("the fence: a late start of the dead runner's life finds its folder claimed and starts nothing", async () => {
    const dir = join(tmp.join('jobs'), `fence-${process.pid}`);
    const ran = tmp.join('ran-fence');
    const life = new Date().toISOString();
    expect(fenceLife(dir, life)).toBe(true);
    expect(fenceLife(dir, life)).toBe(false); // held by that life now
    const spawner = new Spawner({});
    const end = await new Promise((resolve) =>
      spawner.run(
        { dir, cwd: tmp.path, command: `touch ${ran}`, env: {}, life },
        { started: () => {}, ended: resolve },
      ),
    );
    expect(end).toMatchObject({ kind: 'claimed' });
    expect(existsSync(ran)).toBe(false);
    spawner.close();
  });

  it("the fence outlives the next life: the task's new start takes the folder, a later start of the dead runner's life still starts nothing", async () => {
    const dir = join(tmp.join('jobs'), `fence-next-${process.pid}`);
    const ran = tmp.join('ran-fence-next');
    const dead = '2026-01-01T00:00:00.000Z';
    const next = '2026-01-01T00:00:07.000Z';
    expect(fenceLife(dir, dead)).toBe(true);
    const spawner = new Spawner({});
    const start = (life: string, folder = dir) =>
      new Promise((resolve) =>
        spawner.run(
          { dir: folder, cwd: tmp.path, command: `echo ${life} >> ${ran}`, env: {}, life },
          { started: () => {}, ended: resolve },
        ),
      );
    // The runner that took the task queued again starts its next life: the fence is stale to it.
    expect(await start(next)).toMatchObject({ kind: 'exit', code: 0 });
    expect(folderLife(dir)).toBe(next);
    // The dead runner's spawner, reading its last request only now: nothing starts.
    expect(await start(dead)).toMatchObject({ kind: 'claimed' });
    expect(readFileSync(ran, 'utf8')).toBe(`${next}\n`);
    expect(readlinkSync(retiredClaim(dir, dead))).toBe(dead);
    // A fence over another life's claim keeps that claim too.
    const other = join(tmp.join('jobs'), `fence-over-${process.pid}`);
    expect(fenceLife(other, dead)).toBe(true);
    expect(fenceLife(other, next)).toBe(true);
    expect(folderLife(other)).toBe(next);
    expect(await start(dead, other)).toMatchObject({ kind: 'claimed' });
    expect(readFileSync(ran, 'utf8')).toBe(`${next}\n`);
    spawner.close();
  });
});
