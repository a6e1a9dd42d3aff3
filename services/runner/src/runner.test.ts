import { readFileSync } from 'node:fs';
import { Bus, createLogger } from '@computepods/bus';
import { buckets, subjects, TaskRecord } from '@computepods/protocol';
import { NatsServer, TempDir } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRunner } from './runner.js';

const P = 'runnertest';

describe('runner v1 (local) over a real nats-server', () => {
  let nats: NatsServer;
  let bus: Bus;
  let stop: () => Promise<void>;
  const dir = new TempDir('cp-runner-');
  const logger = createLogger('runner-test');
  logger.level = 'silent';

  beforeAll(async () => {
    nats = await NatsServer.start();
    bus = await Bus.connect({ servers: nats.url, service: 'runner', project: P, logger });
    stop = await startRunner(bus, {
      project: P,
      resource: 'local',
      runnerId: 'r1',
      stateDir: dir.join('state'),
      parallel: 2,
    });
  });
  afterAll(async () => {
    await stop?.();
    await nats?.[Symbol.asyncDispose]();
    dir[Symbol.dispose]();
  });

  async function finalState(taskId: string) {
    const kv = await bus.kv(buckets.tasks(P), TaskRecord);
    for (let i = 0; i < 500; i++) {
      const r = (await kv.get(taskId))?.value;
      if (r && ['finished', 'failed', 'killed'].includes(r.state)) return r;
      await new Promise((res) => setTimeout(res, 20));
    }
    throw new Error(`task ${taskId} did not end`);
  }

  it('runs a task once, records every state, and ignores a redelivered duplicate', async () => {
    const out = dir.join('count');
    const task = {
      taskId: 't-1',
      resource: 'local',
      command: `echo run >> ${out}; echo to-stderr >&2`,
      cwd: dir.path,
    };
    await bus.publish('task.submitted', subjects.tasks(P, 'local'), task, { msgId: 'a' });
    const rec = await finalState('t-1');
    expect(rec.state).toBe('finished');
    expect(rec.history.map((h) => h.state)).toEqual([
      'created',
      'submitted',
      'running',
      'finished',
    ]);
    expect(readFileSync(rec.stderrPath!, 'utf8')).toBe('to-stderr\n');
    // same task again under another msgId (a retried chef): not run twice
    await bus.publish('task.submitted', subjects.tasks(P, 'local'), task, { msgId: 'b' });
    await bus.publish('task.submitted', subjects.tasks(P, 'local'), {
      ...task,
      taskId: 't-2',
      command: 'exit 3',
    });
    expect((await finalState('t-2')).exitCode).toBe(3);
    expect(readFileSync(out, 'utf8')).toBe('run\n');
  });

  it('fails a task that times out and kills its process group', async () => {
    await bus.publish('task.submitted', subjects.tasks(P, 'local'), {
      taskId: 't-slow',
      resource: 'local',
      command: 'sleep 30 & sleep 30',
      cwd: dir.path,
      timeoutMs: 300,
    });
    const rec = await finalState('t-slow');
    expect(rec.state).toBe('failed');
    expect(rec.reason).toMatch(/timed out/);
  });
});
