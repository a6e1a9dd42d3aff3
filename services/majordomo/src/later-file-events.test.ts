import { ensureProjectStreams } from '@computepods/bus';
import { streams, subjects } from '@computepods/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { laterFileEvents } from './later-file-events.js';
import { POD, TestMajorDomo } from './test-majordomo.js';

const P = 'later';

/** The files stream read after a batch delivered again (FILE ORDER: file-order.ts). */
describe('laterFileEvents', () => {
  const t = new TestMajorDomo(P);
  /** Stream sequences of the batches published in beforeAll, in order. */
  const seqs: number[] = [];
  beforeAll(async () => {
    await t.open({ chef: false });
    await ensureProjectStreams(t.bus, P);
    const a = await t.files(t.changed('src/a.txt', 'one'));
    // Not a file batch (a fuzzer's bytes): passed over.
    const junk = await t.bus.js.publish(subjects.filesChanged(P, POD), 'not json {');
    const b = await t.files(t.deleted('src/a.txt'), t.changed('src/b.txt', 'two'));
    const moved = { ...t.changed('src/d.txt', 'm'), kind: 'moved' as const, from: 'src/c.txt' };
    const c = await t.files(moved);
    const d = await t.files(t.changed('src/b.txt', 'three'));
    seqs.push(a.seq, junk.seq, b.seq, c.seq, d.seq);
  }, 60_000);
  afterAll(() => t.close());

  const stream = streams.files(P);
  const asked = new Set(['src/a.txt', 'src/b.txt', 'src/c.txt', 'src/x.txt']);

  it("names each asked path's latest later batch, a move's source too, and nothing else", async () => {
    const [a, , b, c, d] = seqs as [number, number, number, number, number];
    const { later, complete } = await laterFileEvents(t.bus, stream, a, asked);
    expect(complete).toBe(true);
    expect(Object.fromEntries(later)).toEqual({ 'src/a.txt': b, 'src/b.txt': d, 'src/c.txt': c });
    // After the last batch there is nothing later.
    const none = await laterFileEvents(t.bus, stream, d, asked);
    expect(none).toEqual({ later: new Map(), complete: true });
  });

  it('reads no more than its limit, and says it stopped', async () => {
    const [a, , b] = seqs as [number, number, number];
    const { later, complete } = await laterFileEvents(t.bus, stream, a, asked, 2);
    expect(complete).toBe(false);
    expect(Object.fromEntries(later)).toEqual({ 'src/a.txt': b, 'src/b.txt': b });
  });
});
