import { NatsServer } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { Bus } from './bus.js';
import { quietLogger } from './logger.js';
import type { TypedKv } from './typed-kv.js';

const Value = z.object({ n: z.number() });

describe('TypedKv listing while the bucket is written (a real nats-server)', () => {
  let nats: NatsServer;
  let bus: Bus;
  let kv: TypedKv<typeof Value>;
  const logger = quietLogger('kv-test');

  beforeAll(async () => {
    nats = await NatsServer.start();
    bus = await Bus.connect({ servers: nats.url, service: 'tester', project: 'kvtest', logger });
    kv = await bus.kv('kvtest_listing', Value, { history: 5 });
  });
  afterAll(async () => {
    await bus?.close();
    await nats?.[Symbol.asyncDispose]();
  });

  it('entries() and keys() end while another loop puts and deletes keys (they hung)', async () => {
    for (let i = 0; i < 50; i++) await kv.put(`stable/${i}`, { n: i });
    let writing = true;
    for (let i = 0; i < 300; i++) await kv.put(`churn/${i}`, { n: i });
    // Keys spread over the whole bucket are rewritten and deleted while it is listed, so some
    // are superseded before the listing reaches them. The writer never stops while a listing
    // runs (a listing that waits for the stream's end as found never ends beside it), but keeps
    // WRITES_IN_FLIGHT at a time: with 60 at once beside 15 listings of 64 walkers each, this
    // one process and its nats-server took 42-99 s, and under load a delete's ack once missed
    // its 5 s (fresh-clone CI, run 65): the test's own flood, not the listing under test.
    const WRITES_IN_FLIGHT = 8;
    const writer = (async () => {
      for (let i = 0; writing; i++) {
        const k = (i * 37) % 300;
        await Promise.all(
          Array.from({ length: WRITES_IN_FLIGHT }, (_, j) =>
            j % 4 === 0
              ? kv.delete(`churn/${(k + j * 7) % 300}`)
              : kv.put(`churn/${(k + j * 13) % 300}`, { n: i }),
          ),
        );
      }
    })();
    try {
      for (let round = 0; round < 10; round++) {
        const lists = await Promise.all(Array.from({ length: 4 }, () => kv.entries()));
        for (const list of lists)
          for (let i = 0; i < 50; i++) expect(list.get(`stable/${i}`)?.value.n).toBe(i);
        const keys = await Promise.all(Array.from({ length: 2 }, () => kv.keys()));
        for (const k of keys) {
          expect(k.filter((x) => x.startsWith('stable/')).length).toBe(50);
          // A key rewritten while listed is delivered twice (its value, then the newer one).
          expect(k.length - new Set(k).size, 'keys listed twice').toBe(0);
        }
      }
    } finally {
      writing = false;
      await writer;
    }
  }, 120_000);

  it('entries() and keys() give each key its latest revision; deleted and purged keys are gone', async () => {
    // A bucket that keeps history: older values of a key sit in other walkers' slices.
    const h = await bus.kv('kvtest_latest', Value, { history: 5 });
    const revisions = new Map<string, number>();
    for (let round = 0; round < 3; round++)
      for (let i = 0; i < 200; i++)
        if (round === 0 || i % (round + 1) === 0)
          revisions.set(`k/${i}`, await h.put(`k/${i}`, { n: round * 1000 + i }));
    for (let i = 0; i < 200; i += 10) await h.delete(`k/${i}`);
    await h.kv.purge('k/5');
    await h.kv.put('k/7', 'not json');
    const list = await h.entries();
    const expected = [...revisions.keys()].filter((k) => {
      const i = Number(k.slice(2));
      return i % 10 !== 0 && i !== 5 && i !== 7;
    });
    expect([...list.keys()].sort()).toEqual(expected.sort());
    for (const k of expected) {
      const i = Number(k.slice(2));
      const round = i % 3 === 0 ? 2 : i % 2 === 0 ? 1 : 0;
      expect(list.get(k), k).toEqual({
        value: { n: round * 1000 + i },
        revision: revisions.get(k),
      });
    }
    // keys() names what holds a value, the invalid one too (its value is not read).
    expect((await h.keys()).sort()).toEqual([...expected, 'k/7'].sort());
  });

  it('changesSince(rev) gives the keys written after rev: values, deletes and purges as undefined', async () => {
    const c = await bus.kv('kvtest_since', Value, { history: 1 });
    for (let i = 0; i < 100; i++) await c.put(`k/${i}`, { n: i });
    const at = await c.changesSince(0);
    expect(at.changes.size).toBe(100);
    expect(at.created).toBe((await c.kv.status()).streamInfo.created);
    const mark = at.last;
    await c.put('k/3', { n: 1003 });
    await c.put('k/3', { n: 2003 });
    await c.put('new', { n: 7 });
    await c.delete('k/4');
    await c.kv.purge('k/5');
    await c.kv.put('k/6', 'not json');
    const since = await c.changesSince(mark);
    expect([...since.changes.keys()].sort()).toEqual(['k/3', 'k/4', 'k/5', 'k/6', 'new']);
    expect(since.changes.get('k/3')?.value).toEqual({ n: 2003 });
    expect(since.changes.get('new')?.value).toEqual({ n: 7 });
    for (const gone of ['k/4', 'k/5', 'k/6']) expect(since.changes.get(gone), gone).toBeUndefined();
    expect(since.last).toBe(mark + 6);
    // Nothing written since the last: nothing.
    expect((await c.changesSince(since.last)).changes.size).toBe(0);
  });

  it('an invalid value is ignored by watchValid(), not reported as a delete', async () => {
    await kv.put('w', { n: 1 });
    const seen: Array<number | undefined> = [];
    const stop = await kv.watchValid((_k, v) => seen.push(v?.n), 'w');
    await kv.kv.put('w', '{"n":"not a number"}');
    await kv.put('w', { n: 2 });
    for (let i = 0; i < 500 && !seen.includes(2); i++) await new Promise((r) => setTimeout(r, 10));
    stop();
    expect(seen).toEqual([1, 2]);
  });
});
