import { NatsServer } from '@computepods/testkit';
import type { JetStreamManager } from '@nats-io/jetstream';
import { errors } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { Bus } from './bus.js';
import { dataOf, latestMessages } from './kv-list.js';
import { quietLogger } from './logger.js';

const Value = z.object({ n: z.number() });

/** The server's own manager, whose message gets fail as `fail` says before reaching it. */
function failingGets(jsm: JetStreamManager, fail: (seq: number) => Error | undefined) {
  const streams = new Proxy(jsm.streams, {
    get(target, prop, receiver) {
      if (prop !== 'getMessage') return Reflect.get(target, prop, receiver);
      return (...args: Parameters<typeof target.getMessage>) => {
        const err = fail((args[1] as { seq: number }).seq);
        return err ? Promise.reject(err) : target.getMessage(...args);
      };
    },
  });
  return new Proxy(jsm, {
    get: (target, prop, receiver) =>
      prop === 'streams' ? streams : Reflect.get(target, prop, receiver),
  });
}

describe('latestMessages: a bucket listed by message gets (a real nats-server)', () => {
  let nats: NatsServer;
  let bus: Bus;
  const logger = quietLogger('kv-list-test');

  beforeAll(async () => {
    nats = await NatsServer.start();
    bus = await Bus.connect({ servers: nats.url, service: 'tester', project: 'kvlist', logger });
    const kv = await bus.kv('kvlist_values', Value);
    for (let i = 0; i < 100; i++) await kv.put(`k/${i}`, { n: i });
  });
  afterAll(async () => {
    await bus?.close();
    await nats?.[Symbol.asyncDispose]();
  });

  it("decodes a stored message's bytes as nats.js does, without its atob (dataOf)", async () => {
    const kv = await bus.kv('kvlist_bytes', Value);
    const values = [
      new Uint8Array(0),
      Uint8Array.from({ length: 256 }, (_, i) => i),
      new TextEncoder().encode(JSON.stringify({ n: 'é'.repeat(70_000) })),
    ];
    for (const [i, v] of values.entries()) await kv.kv.put(`b/${i}`, v);
    for (const [i, v] of values.entries()) {
      const m = await bus.jsm.streams.getMessage('KV_kvlist_bytes', {
        last_by_subj: `$KV.kvlist_bytes.b/${i}`,
      });
      if (!m) throw new Error(`no message for b/${i}`);
      expect(Buffer.from(dataOf(m))).toEqual(Buffer.from(v));
      expect(Buffer.from(dataOf(m))).toEqual(Buffer.from(m.data));
      // Decoded by Buffer (nats.js still keeps its answer where dataOf reads it), but the empty.
      if (v.length) expect(Buffer.isBuffer(dataOf(m))).toBe(true);
    }
  });

  it('asks again for a get that timed out: the listing is whole', async () => {
    // The first get at every third sequence times out (a server too loaded to answer in time).
    const failed = new Set<number>();
    const jsm = failingGets(bus.jsm, (seq) => {
      if (seq % 3 !== 0 || failed.has(seq)) return undefined;
      failed.add(seq);
      return new errors.TimeoutError();
    });
    const latest = await latestMessages(jsm, 'kvlist_values');
    expect(failed.size).toBeGreaterThan(10);
    expect(latest.size).toBe(100);
    expect([...latest.keys()].sort()).toEqual(
      Array.from({ length: 100 }, (_, i) => `k/${i}`).sort(),
    );
  });

  it('lists a key rewritten while the pass runs (its old message gone, the new one past the end)', async () => {
    const kv = await bus.kv('kvlist_values', Value);
    const last = (await bus.jsm.streams.info('KV_kvlist_values')).state.last_seq;
    let rewritten = false;
    // Before the first get reaches the server, the key at the stream's last sequence is put
    // again: the bucket keeps one value per key, so the message the pass was to read is removed.
    const jsm = failingGets(bus.jsm, () => undefined);
    const streams = jsm.streams;
    const racing = new Proxy(jsm, {
      get: (target, prop, receiver) =>
        prop === 'streams'
          ? new Proxy(streams, {
              get(t, p, r) {
                if (p !== 'getMessage') return Reflect.get(t, p, r);
                return async (...args: Parameters<typeof t.getMessage>) => {
                  if (!rewritten) {
                    rewritten = true;
                    const m = await bus.jsm.streams.getMessage('KV_kvlist_values', { seq: last });
                    const key = m?.subject.slice('$KV.kvlist_values.'.length) ?? '';
                    await kv.put(key.replaceAll('.', '/'), { n: -1 });
                  }
                  return t.getMessage(...args);
                };
              },
            })
          : Reflect.get(target, prop, receiver),
    });
    const latest = await latestMessages(racing, 'kvlist_values');
    expect(rewritten).toBe(true);
    expect(latest.size).toBe(100);
    const minusOne = [...latest.values()].filter(
      (m) => JSON.parse(Buffer.from(m.data).toString()).n === -1,
    );
    expect(minusOne).toHaveLength(1);
  });

  it('gives up on a get that keeps failing, naming the bucket and the sequence', async () => {
    const jsm = failingGets(bus.jsm, () => new errors.TimeoutError());
    await expect(latestMessages(jsm, 'kvlist_values')).rejects.toMatchObject({
      code: 'CP_UNAVAILABLE',
      retryable: true,
      message: expect.stringMatching(
        /^could not list KV bucket kvlist_values: the get at sequence \d+ failed 4 times \(timeout\)/,
      ),
    });
  });

  it('does not repeat a get that cannot succeed (permission, bad request)', async () => {
    let calls = 0;
    const jsm = failingGets(bus.jsm, () => {
      calls++;
      return new errors.PermissionViolationError('Permission Violation', 'publish', '$JS.API');
    });
    await expect(latestMessages(jsm, 'kvlist_values')).rejects.toMatchObject({
      message: expect.stringContaining('failed once'),
    });
    expect(calls).toBeLessThanOrEqual(64); // one per walker, none asked again
  });
});
