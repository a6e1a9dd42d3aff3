import { NatsServer } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { Bus } from './bus.js';
import { quietLogger } from './logger.js';
import type { TypedKv } from './typed-kv.js';

const Value = z.object({ n: z.number() });

describe('TypedKv.follow: one read, then the updates (a real nats-server)', () => {
  let nats: NatsServer;
  let bus: Bus;
  let kv: TypedKv<typeof Value>;
  const logger = quietLogger('kv-follow-test');
  // The reads of a key, as the server is asked for them (direct gets on the bucket's stream).
  const reads: string[] = [];

  beforeAll(async () => {
    nats = await NatsServer.start();
    bus = await Bus.connect({ servers: nats.url, service: 'tester', project: 'kvtest', logger });
    kv = await bus.kv('kvtest_follow', Value, { history: 5 });
    const spy = bus.nc.subscribe('$JS.API.DIRECT.GET.KV_kvtest_follow.>');
    void (async () => {
      for await (const m of spy) reads.push(m.subject);
    })();
    await bus.nc.flush();
  });
  afterAll(async () => {
    await bus?.close();
    await nats?.[Symbol.asyncDispose]();
  });

  const readsOf = async (key: string) => {
    await bus.nc.flush();
    return reads.filter((s) => s.endsWith(`.${key}`)).length;
  };

  it('reads the key once; a later write, and one made before until(), reach until()', async () => {
    await kv.put('a', { n: 1 });
    const follower = await kv.follow('a');
    expect((await follower.read)?.value.n).toBe(1);
    // Written before until() is called: kept for it.
    await kv.put('a', { n: 2 });
    await new Promise((r) => setTimeout(r, 100));
    expect((await follower.until((v) => v.n === 2)).n).toBe(2);
    const later = follower.until((v) => v.n === 3);
    await kv.put('a', { n: 3 });
    expect((await later).n).toBe(3);
    follower.stop();
    expect(await readsOf('a')).toBe(1);
  });

  it('a key with no value reads as none, and its first write is heard', async () => {
    const follower = await kv.follow('b');
    expect(await follower.read).toBeUndefined();
    const first = follower.until(() => true);
    await kv.create('b', { n: 7 });
    expect((await first).n).toBe(7);
    follower.stop();
    expect(await readsOf('b')).toBe(1);
  });

  it('a delete or purge is heard as no value; a put after it, one with headers too, is', async () => {
    const rev = await kv.put('c', { n: 1 });
    const follower = await kv.follow('c');
    expect((await follower.read)?.value.n).toBe(1);
    const heard: number[] = [];
    const next = follower.until((v) => {
      heard.push(v.n);
      return v.n > 1;
    });
    await kv.delete('c');
    await kv.kv.purge('c');
    // A compare-and-set's write carries its expected revision in headers (as a runner's does).
    const again = await kv.create('c', { n: 2 });
    expect(again).toBeGreaterThan(rev);
    await kv.update('c', { n: 3 }, again);
    expect((await next).n).toBe(2);
    expect((await follower.until((v) => v.n === 3)).n).toBe(3);
    expect(heard).toEqual([1, 2]);
    follower.stop();
  });

  it('stop() rejects a pending until() and hears no more; waitFor still reads and waits', async () => {
    const follower = await kv.follow('c');
    const pending = follower.until((v) => v.n === 9);
    follower.stop();
    await expect(pending).rejects.toThrow(/stopped following kvtest_follow key c/);
    await expect(follower.until(() => true)).rejects.toThrow(/stopped following/);
    const waited = kv.waitFor('c', (v) => v.n === 9);
    await kv.put('c', { n: 9 });
    expect((await waited).n).toBe(9);
  });

  // On a NATS cluster a watch's consumer lives on one node. When that node dies, the watch is
  // silent, its consumer's info fails, and a new watch's consumer may be placed on the dead node
  // again (its creation times out): the waited keys must be read at once all the same.
  it('hears a waited value when its watch is gone and no new watch can be made', async () => {
    const broken = await bus.kv('kvtest_broken', Value);
    await broken.put('t', { n: 1 });
    // follow() returns once the shared watch is made (waitFor's, the same).
    const follower = await broken.follow('t');
    const waited = follower.until((v) => v.n === 2);
    const names: string[] = [];
    for await (const c of bus.jsm.consumers.list('KV_kvtest_broken')) names.push(c.name);
    expect(names).toHaveLength(1);
    // Every new watch hangs from now on, as its creation does on a dead node.
    broken.kv.watch = () => new Promise(() => undefined);
    await bus.jsm.consumers.delete('KV_kvtest_broken', names[0] as string);
    await broken.put('t', { n: 2 });
    expect((await waited).n).toBe(2);
    follower.stop();
  }, 40_000);

  it('until() rejects with the signal reason on abort', async () => {
    const follower = await kv.follow('d');
    const ac = new AbortController();
    const pending = follower.until(() => true, ac.signal);
    ac.abort(new Error('no longer wanted'));
    await expect(pending).rejects.toThrow('no longer wanted');
    follower.stop();
  });
});
