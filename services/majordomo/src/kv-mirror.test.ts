import { Bus, quietLogger } from '@computepods/bus';
import { NatsServer } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { KvMirror, readMatching } from './kv-mirror.js';

const Rec = z.object({ n: z.number() });

const until = async (ok: () => boolean) => {
  for (let i = 0; i < 200 && !ok(); i++) await new Promise((r) => setTimeout(r, 25));
};

/** The in-memory copy REST listings read, over a real nats-server. */
describe('KvMirror and readMatching', () => {
  let nats: NatsServer;
  let bus: Bus;

  beforeAll(async () => {
    nats = await NatsServer.start();
    const logger = quietLogger('majordomo');
    bus = await Bus.connect({
      servers: nats.url,
      service: 'majordomo',
      project: 'mirror',
      logger,
      discoverable: false,
    });
  }, 60_000);
  afterAll(async () => {
    await bus?.close();
    await nats?.[Symbol.asyncDispose]();
  });

  it('shows what was written before a call, not what was deleted or is invalid', async () => {
    const kv = await bus.kv('mirror_plain', Rec);
    const mirror = await KvMirror.start(kv, 'mirror_plain', bus.logger);
    try {
      await kv.put('a', { n: 1 });
      await kv.kv.put('bad', '{"n":"x"}');
      expect([...(await mirror.values()).keys()]).toEqual(['a']);
      await kv.put('a', { n: 2 });
      expect((await mirror.values()).get('a')?.value).toEqual({ n: 2 });
      await kv.delete('a');
      expect([...(await mirror.values()).keys()]).toEqual([]);
    } finally {
      mirror.stop();
    }
  });

  it('validates a value only when a call lists it, once, not each time it is rewritten', async () => {
    let checks = 0;
    const Counted = Rec.refine(() => ++checks > 0);
    const kv = await bus.kv('mirror_lazy', Counted);
    const mirror = await KvMirror.start(kv, 'mirror_lazy', bus.logger);
    try {
      for (let n = 0; n < 30; n++) await kv.put('a', { n });
      await kv.put('b', { n: 0 });
      checks = 0; // put() validates what it writes
      await until(() => mirror.size === 2);
      expect(checks).toBe(0);
      expect((await mirror.values()).get('a')?.value).toEqual({ n: 29 });
      expect(checks).toBe(2);
      await mirror.values();
      expect(checks).toBe(2);
      await kv.put('b', { n: 1 });
      checks = 0;
      expect((await mirror.values()).get('b')?.value).toEqual({ n: 1 });
      expect(checks).toBe(1);
    } finally {
      mirror.stop();
    }
  });

  it('drops a value the bucket expired (max age: no delete is seen by a watch)', async () => {
    const kv = await bus.kv('mirror_aged', Rec, { maxAgeMs: 1_000 });
    const mirror = await KvMirror.start(kv, 'mirror_aged', bus.logger);
    try {
      await kv.put('old', { n: 1 });
      expect([...(await mirror.values()).keys()]).toEqual(['old']);
      // Gone from the bucket once expired (nats-server sweeps now and then).
      for (let i = 0; i < 300 && (await kv.get('old')); i++)
        await new Promise((r) => setTimeout(r, 100));
      expect(await kv.get('old')).toBeUndefined();
      await kv.put('new', { n: 2 });
      expect([...(await mirror.values()).keys()]).toEqual(['new']);
    } finally {
      mirror.stop();
    }
  });

  it('drops expired values as new ones come in, with no call reading it (memory stays bounded)', async () => {
    const kv = await bus.kv('mirror_churn', Rec, { maxAgeMs: 1_000 });
    const mirror = await KvMirror.start(kv, 'mirror_churn', bus.logger);
    try {
      for (let i = 0; i < 20; i++) await kv.put(`first${i}`, { n: i });
      await until(() => mirror.size === 20);
      // Once the bucket expired them, the next key's arrival drops them here too.
      for (let i = 0; i < 300 && (await kv.get('first19')); i++)
        await new Promise((r) => setTimeout(r, 100));
      expect(await kv.get('first19')).toBeUndefined();
      await kv.put('later', { n: 0 });
      await until(() => mirror.size === 1);
      expect(mirror.size).toBe(1);
    } finally {
      mirror.stop();
    }
  });

  it('readMatching reads only the keys under a filter, none when there are none', async () => {
    const kv = await bus.kv('mirror_filter', Rec);
    expect([...(await readMatching(kv, 'queue.>')).keys()]).toEqual([]);
    await kv.put('queue.a', { n: 1 });
    await kv.put('other', { n: 2 });
    await kv.kv.put('queue.bad', 'not json');
    await kv.put('queue.b', { n: 3 });
    const got = await readMatching(kv, 'queue.>');
    expect([...got.keys()].sort()).toEqual(['queue.a', 'queue.b']);
  });
});
