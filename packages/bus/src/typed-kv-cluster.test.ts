import { NatsCluster } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { Bus } from './bus.js';
import { quietLogger } from './logger.js';
import type { TypedKv } from './typed-kv.js';

const Value = z.object({ n: z.number() });

/**
 * A KV watch is an ordered consumer with one replica, on one node of a cluster. When that node
 * was killed -9, nats.js 3.4 never made the consumer again: a chef waiting for its task's end
 * (TypedKv.waitFor) heard nothing until the node came back.
 */
describe('TypedKv.waitFor on a 3-node cluster (real nats-servers)', () => {
  let cluster: NatsCluster;
  let waiter: Bus;
  let writer: Bus;
  let kv: TypedKv<typeof Value>;
  let kvw: TypedKv<typeof Value>;
  const logger = quietLogger('kv-cluster-test');
  const bucket = 'kvc_tasks';

  beforeAll(async () => {
    cluster = await NatsCluster.start();
    const connect = (service: string) =>
      Bus.connect({
        servers: cluster.url,
        tls: { caFile: cluster.caFile },
        service,
        project: 'kvc',
        logger,
        discoverable: false,
      });
    waiter = await connect('waiter');
    writer = await connect('writer');
    kv = await waiter.kv(bucket, Value, { replicas: 3 });
    kvw = await writer.kv(bucket, Value, { replicas: 3 });
  }, 120_000);
  afterAll(async () => {
    await waiter?.close();
    await writer?.close();
    await cluster?.[Symbol.asyncDispose]();
  });

  it('hears a value written after the node holding its watch was killed -9', async () => {
    await kvw.put('t', { n: 1 });
    const wait = kv.waitFor('t', (v) => v.n === 2);
    // The shared watch is the bucket's only consumer: the node it lives on.
    let node: string | undefined;
    for (const end = performance.now() + 10_000; !node && performance.now() < end; ) {
      for await (const c of waiter.jsm.consumers.list(`KV_${bucket}`)) node = c.cluster?.leader;
      if (!node) await new Promise((r) => setTimeout(r, 50));
    }
    expect(node).toMatch(/^cp-nats-\d$/);
    const victim = cluster.node(node as string);
    await victim.kill9();
    try {
      // Written once the bucket has a leader again (an election, if the victim led it).
      for (const end = performance.now() + 30_000; ; ) {
        try {
          await kvw.put('t', { n: 2 });
          break;
        } catch (err) {
          if (performance.now() > end) throw err;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
      let timer: NodeJS.Timeout | undefined;
      const got = await Promise.race([
        wait,
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () =>
              reject(new Error(`waitFor did not hear n=2 within 30 s of ${victim.name}'s death`)),
            30_000,
          );
        }),
      ]).finally(() => clearTimeout(timer));
      expect(got.n).toBe(2);
    } finally {
      await victim.start();
    }
  }, 120_000);
});
