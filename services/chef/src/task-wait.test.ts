import { Bus, quietLogger, type TypedKv } from '@computepods/bus';
import { kvKey, TaskRecord } from '@computepods/protocol';
import { NatsServer } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chefConfig } from './config.js';
import { TaskView } from './task-view.js';
import { stoppedTask, TaskWaitError, waitForTerminal } from './task-wait.js';

describe('a chef waiting for its task (a real nats-server)', () => {
  let nats: NatsServer;
  let bus: Bus;
  /** The runner's side: whole records. */
  let records: TypedKv<typeof TaskRecord>;
  /** The chef's side of the same bucket. */
  let tasks: TypedKv<typeof TaskView>;
  const logger = quietLogger('chef-test');

  beforeAll(async () => {
    nats = await NatsServer.start();
    bus = await Bus.connect({ servers: nats.url, service: 'chef', project: 'tw', logger });
    records = await bus.kv('cp_tw_tasks', TaskRecord);
    tasks = await bus.kv('cp_tw_tasks', TaskView);
  });
  afterAll(async () => {
    await bus?.close();
    await nats?.[Symbol.asyncDispose]();
  });

  it('gives up on a task no runner ever recorded (it held a build slot for ever)', async () => {
    const err = await waitForTerminal(tasks, 'b-missing', 'local', {
      recordMs: 50,
      totalMs: 2 ** 31 - 1,
      stopMs: 30_000,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TaskWaitError);
    expect((err as TaskWaitError).code).toBe('CP_TASK_NO_RECORD');
    expect((err as Error).message).toMatch(/is a runner serving queue local/);
  });

  it('returns the terminal record of a task that ends', async () => {
    const now = new Date().toISOString();
    const task = { taskId: 'b-done', resource: 'local', command: 'true', cwd: '/w' };
    const waiting = waitForTerminal(tasks, 'b-done', 'local', chefConfig({}).taskWait);
    await records.put('b-done', { task, state: 'running', updated: now });
    await records.put('b-done', {
      task,
      state: 'finished',
      exitCode: 0,
      stderrPath: '/w/.cp/b-done/stderr',
      history: [{ state: 'running', time: now }],
      updated: now,
    });
    // What the chef reads of the runner's record, nothing else.
    expect(await waiting).toEqual({
      state: 'finished',
      stderrPath: '/w/.cp/b-done/stderr',
      updated: now,
    });
  });

  it('validates what it reads of a record: an invalid state or time is no end', async () => {
    const now = new Date().toISOString();
    const task = { taskId: 'b-odd', resource: 'local', command: 'true', cwd: '/w' };
    const waiting = waitForTerminal(tasks, 'b-odd', 'local', chefConfig({}).taskWait);
    const raw = (v: unknown) => records.kv.put(kvKey('b-odd'), JSON.stringify(v));
    await raw({ task, state: 'done', updated: now });
    await raw({ task, state: 'finished', updated: 'yesterday' });
    await raw({ task, state: 'failed', reason: 42, updated: now });
    // The watch reports the writes in order: had one of the invalid ends been taken, it would
    // be the answer.
    await records.put('b-odd', { task, state: 'failed', reason: 'exit 2', updated: now });
    expect(await waiting).toEqual({ state: 'failed', reason: 'exit 2', updated: now });
  });

  it('waits on a killed task until its processes are gone (the runner takes stopping off)', async () => {
    const now = new Date().toISOString();
    const task = { taskId: 'b-trap', resource: 'local', command: 'true', cwd: '/w' };
    const waiting = waitForTerminal(tasks, 'b-trap', 'local', chefConfig({}).taskWait);
    let settled = false;
    void waiting.then(() => {
      settled = true;
    });
    await records.put('b-trap', { task, state: 'running', updated: now });
    await records.put('b-trap', { task, state: 'killed', stopping: true, updated: now });
    // Its next build may start once this resolves: not while the command may still run. The
    // chef's side sees every write in order, so one written after a third write is seen first.
    const probe = waitForTerminal(tasks, 'b-probe', 'local', chefConfig({}).taskWait);
    await records.put('b-probe', {
      task: { ...task, taskId: 'b-probe' },
      state: 'failed',
      updated: now,
    });
    await probe;
    expect(settled).toBe(false);
    await records.put('b-trap', { task, state: 'killed', updated: now });
    expect(await waiting).toEqual({ state: 'killed', updated: now });
    // Read as ended and gone already: at once.
    expect(
      await stoppedTask(
        tasks,
        'b-trap',
        { state: 'killed', updated: now },
        10,
        new AbortController().signal,
      ),
    ).toBe(true);
  });

  it('goes on after stopMs when stopping stays (its runner died): the end stands, still stopping', async () => {
    const now = new Date().toISOString();
    const task = { taskId: 'b-stuck', resource: 'local', command: 'true', cwd: '/w' };
    await records.put('b-stuck', {
      task,
      state: 'failed',
      reason: 'timed out',
      stopping: true,
      updated: now,
    });
    const limits = { ...chefConfig({}).taskWait, stopMs: 100 };
    expect(await waitForTerminal(tasks, 'b-stuck', 'local', limits)).toEqual({
      state: 'failed',
      reason: 'timed out',
      stopping: true,
      updated: now,
    });
    const rec = (await tasks.get('b-stuck'))?.value as TaskView;
    expect(await stoppedTask(tasks, 'b-stuck', rec, 100, new AbortController().signal)).toBe(false);
    // Aborted: rejects with the signal's reason.
    const cancel = new AbortController();
    const aborted = stoppedTask(tasks, 'b-stuck', rec, 30_000, cancel.signal).catch(
      (e: unknown) => e,
    );
    cancel.abort('cancelled');
    expect(await aborted).toBe('cancelled');
  });

  it('refuses limits a timer cannot hold', () => {
    expect(() => chefConfig({ CP_CHEF_TASK_WAIT_MS: '1e10' })).toThrow(/CP_CHEF_TASK_WAIT_MS/);
  });
});
