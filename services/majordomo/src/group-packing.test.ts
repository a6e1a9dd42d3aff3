import { describe, expect, it } from 'vitest';
import { groupSizes } from './group-packing.js';

describe('groupSizes', () => {
  it('packs n steps into equal groups of at most max, as many as a multiple of the lanes', () => {
    expect(groupSizes(201, 16, 2)).toEqual([...Array(5).fill(15), ...Array(9).fill(14)]);
    expect(groupSizes(20, 16, 2)).toEqual([10, 10]);
    expect(groupSizes(10, 4, 2)).toEqual([3, 3, 2, 2]);
    expect(groupSizes(3, 16, 2)).toEqual([2, 1]);
    expect(groupSizes(1, 16, 8)).toEqual([1]);
    expect(groupSizes(0, 16, 2)).toEqual([]);
  });

  it('never packs more than max, never loses a step, and never makes more groups than steps', () => {
    for (let n = 1; n <= 300; n += 7)
      for (const max of [1, 2, 5, 16, 64])
        for (const spread of [1, 2, 3, 8, 100]) {
          const sizes = groupSizes(n, max, spread);
          expect(sizes.reduce((a, b) => a + b, 0)).toBe(n);
          expect(Math.max(...sizes)).toBeLessThanOrEqual(max);
          expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(1);
          expect(sizes.length).toBeLessThanOrEqual(n);
        }
  });
});
