import { NatsServer } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { Bus } from './bus.js';
import { quietLogger } from './logger.js';
import type { TypedKv } from './typed-kv.js';

const Value = z.object({ n: z.number() });

describe('TypedKv watches leave no consumer behind, waits share one (a real nats-server)', () => {
  let nats: NatsServer;
  let bus: Bus;
  let kv: TypedKv<typeof Value>;
  const logger = quietLogger('kv-test');
  const consumers = async () => (await kv.kv.status()).streamInfo.state.consumer_count;
  const until = async (ok: () => Promise<boolean>, ms: number) => {
    const end = performance.now() + ms;
    while (!(await ok()) && performance.now() < end) await new Promise((r) => setTimeout(r, 50));
  };

  beforeAll(async () => {
    nats = await NatsServer.start();
    bus = await Bus.connect({ servers: nats.url, service: 'tester', project: 'kvtest', logger });
    kv = await bus.kv('kvtest_watch', Value, { history: 5 });
  });
  afterAll(async () => {
    await bus?.close();
    await nats?.[Symbol.asyncDispose]();
  });

  // nats.js only unsubscribes a stopped watch: the server kept its ordered consumer for the
  // 5 minutes of its inactivity threshold. And a consumer per wait (a chef waits on every task)
  // cost nats-server 2.9 memory it never gave back even when deleted: waits share one watch.
  it('waitFor shares one watch of the bucket; watch and listings delete their consumer', async () => {
    const waits = Array.from({ length: 20 }, (_, i) => kv.waitFor(`task/${i}`, (v) => v.n === 2));
    for (let i = 0; i < 20; i++) await kv.put(`task/${i}`, { n: 1 });
    for (let i = 0; i < 20; i++) await kv.put(`task/${i}`, { n: 2 });
    expect((await Promise.all(waits)).map((v) => v.n)).toEqual(Array(20).fill(2));
    // Already there: read at once. A later value reaches a wait that started before it.
    expect((await kv.waitFor('task/3', (v) => v.n === 2)).n).toBe(2);
    const later = kv.waitFor('task/3', (v) => v.n === 4);
    await kv.put('task/3', { n: 4 });
    expect((await later).n).toBe(4);
    const seen: number[] = [];
    const stop = await kv.watch((_k, v) => v && seen.push(v.n), 'task/0');
    await until(async () => seen.length > 0, 5_000);
    stop();
    await kv.entries();
    await kv.keys();
    await until(async () => (await consumers()) === 1, 5_000);
    expect(await consumers()).toBe(1);
    // A stopped watch reports nothing more.
    const before = seen.length;
    await kv.put('task/0', { n: 3 });
    await new Promise((r) => setTimeout(r, 200));
    expect(seen.length).toBe(before);
  });

  it('a wait that is aborted rejects with the reason and stops waiting', async () => {
    const stop = new AbortController();
    const wait = kv.waitFor('never/1', () => true, stop.signal);
    stop.abort(new Error('gave up'));
    await expect(wait).rejects.toThrow('gave up');
    const done = new AbortController();
    done.abort(new Error('already'));
    await expect(kv.waitFor('never/2', () => true, done.signal)).rejects.toThrow('already');
    expect(await consumers()).toBe(1);
  });
});
