import { buckets, kvKey } from '@computepods/protocol';
import { type ReservedPort, reservePort } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { Stack } from './stack.js';

const FLOOD = 1_500;
const CALLS = 4;

/**
 * REST listings over buckets anyone with write rights can flood (pnpm bench fuzz put ~5,000 keys
 * each into the tasks and config buckets): a call must not read the whole bucket. Each
 * GET /api/tasks fetched and validated every task record, each GET /api/resources, /profiles and
 * /queues every config key, seconds of MajorDomo's event loop per call under the fuzzer, and
 * every input path of MajorDomo stalled behind them (its sentinel pings, up to 30 s).
 *
 * Measured in messages, not time: nats-server's monitoring counts what it sent MajorDomo's
 * connection. A listing read per call is at least FLOOD messages a call.
 */
describe('REST listings over flooded buckets', () => {
  let stack: Stack;
  let url: string;
  let monitor: string;
  let monitorPort: ReservedPort | undefined;
  const get = async (path: string): Promise<unknown> => {
    const res = await fetch(`${url}${path}`, {
      headers: { authorization: `Bearer ${stack.apiToken}` },
    });
    const body = await res.text();
    expect(res.status, body).toBe(200);
    return JSON.parse(body);
  };
  /** Messages nats-server has sent MajorDomo's connections so far. */
  const sentToMajorDomo = async (): Promise<number> => {
    const r = (await (await fetch(`${monitor}/connz?limit=4096`)).json()) as {
      connections: { name?: string; out_msgs: number }[];
    };
    const md = r.connections.filter((c) => c.name?.startsWith('majordomo@'));
    expect(md.length).toBeGreaterThan(0);
    return md.reduce((s, c) => s + c.out_msgs, 0);
  };
  /** What CALLS calls of a route cost in messages to MajorDomo (after one call to warm up). */
  const cost = async (path: string): Promise<number> => {
    await get(path);
    const before = await sentToMajorDomo();
    for (let i = 0; i < CALLS; i++) await get(path);
    return (await sentToMajorDomo()) - before;
  };

  beforeAll(async () => {
    // Reserved (outside the kernel's ephemeral range): no other test file takes it before
    // nats-server listens.
    monitorPort = reservePort();
    const port = monitorPort.port;
    monitor = `http://127.0.0.1:${port}`;
    stack = await Stack.start('flood', { natsConfigLines: [`http: "127.0.0.1:${port}"`] });
    await stack.start('majordomo');
    url = await stack.httpUrl();
    const tasks = (await stack.bus.kv(buckets.tasks(stack.project), z.unknown())).kv;
    const config = (await stack.bus.kv(buckets.config(stack.project), z.unknown())).kv;
    // Garbage and look-alikes under keys of every shape, as the fuzzer writes them.
    for (let i = 0; i < FLOOD; i += 100)
      await Promise.all(
        Array.from({ length: Math.min(100, FLOOD - i) }, (_, j) =>
          Promise.all([
            tasks.put(kvKey(`fz-${i + j}`), JSON.stringify({ state: 'running', n: i + j })),
            config.put(kvKey(`fz/${i + j}`), JSON.stringify({ queue: { name: `q${i + j}` } })),
          ]),
        ),
      );
  }, 180_000);
  afterAll(async () => {
    await stack?.[Symbol.asyncDispose]();
    monitorPort?.release();
  });

  it('GET /api/tasks does not read the whole tasks bucket per call, and shows a record just written', async () => {
    expect(await cost('/api/tasks')).toBeLessThan(FLOOD);
    const now = new Date().toISOString();
    const rec = {
      task: {
        taskId: 'upper:flooded',
        resource: 'local',
        command: 'true',
        cwd: '/tmp',
      },
      state: 'finished',
      history: [],
      updated: now,
    };
    const tasks = await stack.bus.kv(buckets.tasks(stack.project), z.unknown());
    await tasks.kv.put(kvKey('upper:flooded'), JSON.stringify(rec));
    // Written before the call: in its answer (the garbage is not).
    const list = (await get('/api/tasks?limit=10000')) as { task: { taskId: string } }[];
    expect(list.map((t) => t.task.taskId)).toEqual(['upper:flooded']);
    await tasks.kv.delete(kvKey('upper:flooded'));
    expect(await get('/api/tasks')).toEqual([]);
  });

  it('GET /api/resources, /api/profiles and /api/queues read only the queue records', async () => {
    for (const path of ['/api/resources', '/api/profiles', '/api/queues'])
      expect(await cost(path), path).toBeLessThan(FLOOD);
    // The project's own queue is still there.
    expect((await get('/api/queues')) as { queue: string }[]).toEqual([
      expect.objectContaining({ queue: 'local' }),
    ]);
  });
});
