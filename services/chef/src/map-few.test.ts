import { describe, expect, it } from 'vitest';
import { mapFew } from './map-few.js';

describe('mapFew', () => {
  it('maps in order, all at once when they fit the concurrency, at most that many in flight beyond', async () => {
    for (const n of [0, 3, 8, 20]) {
      let running = 0;
      let most = 0;
      const out = await mapFew(
        new Set(Array.from({ length: n }, (_, i) => i)),
        async (x, i) => {
          running++;
          most = Math.max(most, running);
          await new Promise((r) => setTimeout(r, 1));
          running--;
          return `${x}:${i}`;
        },
        8,
      );
      expect(out).toEqual(Array.from({ length: n }, (_, i) => `${i}:${i}`));
      expect(most).toBe(Math.min(n, 8));
    }
  });

  it('rejects with the first rejection, also a synchronous throw', async () => {
    const boom = new Error('boom');
    await expect(
      mapFew([1, 2, 3], async (x) => (x === 2 ? Promise.reject(boom) : x), 8),
    ).rejects.toBe(boom);
    await expect(
      mapFew(
        [1, 2],
        (x) => {
          if (x === 1) throw boom;
          return x;
        },
        8,
      ),
    ).rejects.toBe(boom);
  });
});
