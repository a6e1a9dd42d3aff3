import { Bus, createLogger, type TypedKv } from '@computepods/bus';
import { kvKey, TaskRecord } from '@computepods/protocol';
import { NatsServer } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chefConfig } from './config.js';
import { TaskView } from './task-view.js';
import { TaskWaitError, waitForTerminal } from './task-wait.js';

describe('a chef waiting for its task (a real nats-server)', () => {
  let nats: NatsServer;
  let bus: Bus;
  /** The runner's side: whole records. */
  let records: TypedKv<typeof TaskRecord>;
  /** The chef's side of the same bucket. */
  let tasks: TypedKv<typeof TaskView>;
  const logger = createLogger('chef-test');
  logger.level = 'silent';

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

  it('refuses limits a timer cannot hold', () => {
    expect(() => chefConfig({ CP_CHEF_TASK_WAIT_MS: '1e10' })).toThrow(/CP_CHEF_TASK_WAIT_MS/);
  });
});
