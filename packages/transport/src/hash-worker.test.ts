import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { OFF_THREAD_MIN, streamHash } from './hash-worker.js';

describe('streamHash', () => {
  it.each([
    ['inline', 1024],
    ['on the hashing thread', OFF_THREAD_MIN],
  ])('%s: the SHA-256 of the chunks in order, whole, pooled or sliced', async (_how, size) => {
    const chunks = [
      randomBytes(1 << 20),
      Buffer.from('small, from the pool'),
      randomBytes(3 << 20).subarray(12_345, 2_000_000),
      Buffer.alloc(0),
      randomBytes(70_000),
    ];
    const want = createHash('sha256');
    for (const c of chunks) want.update(c);
    const expected = want.digest('hex');
    const h = streamHash(size);
    for (const c of chunks) {
      h.update(c);
      await h.ready();
    }
    expect(await h.digest()).toBe(expected);
  });

  it('wakes every ready() waiting at once once the thread catches up (getHashed waits from each read)', async () => {
    const h = streamHash(OFF_THREAD_MIN);
    const want = createHash('sha256');
    // Past the 64 MiB the thread may fall behind, so ready() has to wait.
    for (let i = 0; i < 80; i++) {
      const chunk = randomBytes(1 << 20);
      want.update(chunk);
      h.update(chunk);
    }
    const waits = Array.from({ length: 8 }, () => h.ready().then(() => 'ready'));
    const stuck = new Promise<string>((r) =>
      setTimeout(() => r('a ready() never resolved'), 20_000),
    );
    expect(await Promise.race([Promise.all(waits).then(() => 'all ready'), stuck])).toBe(
      'all ready',
    );
    expect(await h.digest()).toBe(want.digest('hex'));
  });

  it('keeps streams apart, and a discarded one does not disturb the others', async () => {
    const a = streamHash(OFF_THREAD_MIN);
    const b = streamHash(OFF_THREAD_MIN);
    const gone = streamHash(OFF_THREAD_MIN);
    const da = randomBytes(2 << 20);
    const db = randomBytes(2 << 20);
    a.update(Buffer.from(da));
    gone.update(randomBytes(1 << 20));
    b.update(Buffer.from(db));
    gone.discard();
    const sha = (d: Buffer) => createHash('sha256').update(d).digest('hex');
    expect(await Promise.all([b.digest(), a.digest()])).toEqual([sha(db), sha(da)]);
  });
});
