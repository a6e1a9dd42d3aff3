import { NatsServer } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { Bus } from './bus.js';
import { quietLogger } from './logger.js';

const Value = z.object({ n: z.number() });

/**
 * KvSpec.leaderReads: get() is a message get, which only the bucket stream's leader answers, never
 * a direct get, which any replica of a cluster may answer before it has applied the latest write
 * (a 3-node cluster under load read 90 of 1,500 values stale right after their write; fresh-clone
 * CI failed bootstrapping a project: the resource just made was "not found"). The answers are
 * those of a direct get: the value and its revision, none for a key never written or deleted, and
 * an invalid value ignored. A real nats-server; the gets are seen as the server is asked them.
 */
describe('TypedKv with leaderReads (a real nats-server)', () => {
  let nats: NatsServer;
  let bus: Bus;
  const logger = quietLogger('kv-leader-test');
  const asked: string[] = [];

  beforeAll(async () => {
    nats = await NatsServer.start();
    bus = await Bus.connect({ servers: nats.url, service: 'tester', project: 'kvtest', logger });
    for (const api of ['$JS.API.DIRECT.GET.>', '$JS.API.STREAM.MSG.GET.>']) {
      const spy = bus.nc.subscribe(api);
      void (async () => {
        for await (const m of spy) asked.push(m.subject);
      })();
    }
    await bus.nc.flush();
  });
  afterAll(async () => {
    await bus?.close();
    await nats?.[Symbol.asyncDispose]();
  });

  const askedSince = async (from: number) => {
    await bus.nc.flush();
    return asked.slice(from).map((s) => s.split('.').slice(0, 4).join('.'));
  };

  it('asks the leader and answers as a direct get does', async () => {
    const kv = await bus.kv('kvtest_leader', Value, { leaderReads: true });
    const raw = await bus.kv('kvtest_leader', z.unknown());
    const from = asked.length;
    const rev = await kv.put('a b/c', { n: 1 });
    expect(await kv.get('a b/c')).toEqual({ value: { n: 1 }, revision: rev });
    expect(await kv.get('never')).toBeUndefined();
    await kv.delete('a b/c');
    expect(await kv.get('a b/c')).toBeUndefined();
    await raw.put('bad', { n: 'one' });
    expect(await kv.get('bad')).toBeUndefined();
    // The same bucket read with another schema keeps reading from the leader.
    expect(await kv.withSchema(z.unknown()).get('bad')).toMatchObject({ value: { n: 'one' } });
    expect(await askedSince(from)).toEqual(Array(5).fill('$JS.API.STREAM.MSG'));
  });

  it('asks the leader by default on a cluster (CP_REPLICAS > 1), unless told not to', async () => {
    await (await bus.kv('kvtest_cluster', Value)).put('a', { n: 1 });
    const before = process.env.CP_REPLICAS;
    process.env.CP_REPLICAS = '3';
    try {
      // The bucket exists (made with one replica here): opened, not made again.
      const kv = await bus.kv('kvtest_cluster', Value);
      const direct = await bus.kv('kvtest_cluster', Value, { leaderReads: false });
      const from = asked.length;
      expect((await kv.get('a'))?.value).toEqual({ n: 1 });
      expect((await direct.get('a'))?.value).toEqual({ n: 1 });
      expect(await askedSince(from)).toEqual(['$JS.API.STREAM.MSG', '$JS.API.DIRECT.GET']);
    } finally {
      if (before === undefined) delete process.env.CP_REPLICAS;
      else process.env.CP_REPLICAS = before;
    }
  });

  it('reads with direct gets without it', async () => {
    const kv = await bus.kv('kvtest_direct', Value);
    await kv.put('a', { n: 1 });
    const from = asked.length;
    expect((await kv.get('a'))?.value).toEqual({ n: 1 });
    expect(await askedSince(from)).toEqual(['$JS.API.DIRECT.GET']);
  });
});
