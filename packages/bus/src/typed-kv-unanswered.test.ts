import { NatsServer } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { Bus } from './bus.js';
import { quietLogger } from './logger.js';

const Value = z.object({ n: z.number() });

// On a NATS cluster a bucket's stream is between leaders for seconds after its leader dies, and
// a write meets no responders (nats.js: JetStreamNotEnabled). Here the stream is simply not
// there for a moment: what the writer sees is the same, and the write must wait for it rather
// than fail a handler half-applied (nats-cluster.test in fresh-clone CI).
describe('TypedKv writes nobody answers (a real nats-server)', () => {
  let nats: NatsServer;
  let bus: Bus;
  const logger = quietLogger('kv-unanswered-test');

  beforeAll(async () => {
    nats = await NatsServer.start();
    bus = await Bus.connect({ servers: nats.url, service: 'tester', project: 'kvtest', logger });
  });
  afterAll(async () => {
    await bus?.close();
    await nats?.[Symbol.asyncDispose]();
  });

  it('a put that met no responders is tried again until the bucket answers, and is stored once', async () => {
    const kv = await bus.kv('kvtest_unanswered', Value);
    await kv.put('a', { n: 1 });
    await bus.jsm.streams.delete('KV_kvtest_unanswered');
    const put = kv.put('a', { n: 2 });
    let settled = false;
    void put.finally(() => {
      settled = true;
    });
    await new Promise((r) => setTimeout(r, 500));
    expect(settled).toBe(false); // still trying: nothing answers
    const again = await bus.kv('kvtest_unanswered', Value);
    await put;
    expect((await again.get('a'))?.value).toEqual({ n: 2 });
    expect((await again.get('a'))?.revision).toBe(1);
  });
});
