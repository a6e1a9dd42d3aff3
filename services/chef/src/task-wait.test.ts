import { Bus, createLogger, type TypedKv } from '@computepods/bus';
import { TaskRecord } from '@computepods/protocol';
import { NatsServer } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chefConfig } from './config.js';
import { TaskWaitError, waitForTerminal } from './task-wait.js';

describe('a chef waiting for its task (a real nats-server)', () => {
  let nats: NatsServer;
  let bus: Bus;
  let tasks: TypedKv<typeof TaskRecord>;
  const logger = createLogger('chef-test');
  logger.level = 'silent';

  beforeAll(async () => {
    nats = await NatsServer.start();
    bus = await Bus.connect({ servers: nats.url, service: 'chef', project: 'tw', logger });
    tasks = await bus.kv('cp_tw_tasks', TaskRecord);
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
    await tasks.put('b-done', { task, state: 'running', updated: now });
    await tasks.put('b-done', { task, state: 'finished', exitCode: 0, updated: now });
    expect((await waiting).state).toBe('finished');
  });

  it('refuses limits a timer cannot hold', () => {
    expect(() => chefConfig({ CP_CHEF_TASK_WAIT_MS: '1e10' })).toThrow(/CP_CHEF_TASK_WAIT_MS/);
  });
});
