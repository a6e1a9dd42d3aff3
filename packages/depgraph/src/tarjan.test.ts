import { defined } from '@computepods/testkit';
import { describe, expect, it } from 'vitest';
import { tarjan } from './tarjan.js';

function csr(n: number, edges: Array<[number, number]>) {
  const sorted = [...edges].sort(([a], [b]) => a - b);
  const offsets = new Int32Array(n + 1);
  // offsets[v]: edges from nodes before v, counted while the sorted edges go by.
  let e = 0;
  for (let v = 0; v <= n; v++) {
    while (e < sorted.length && defined(sorted[e], 'edge')[0] < v) e++;
    offsets[v] = e;
  }
  const targets = Int32Array.from(sorted, ([, w]) => w);
  return { offsets, targets };
}

describe('tarjan', () => {
  it('groups cycles and emits successors first', () => {
    // 0 → 1 → 2 → 1, 2 → 3: {3} first, then {1, 2}, then {0}.
    const { offsets, targets } = csr(4, [
      [0, 1],
      [1, 2],
      [2, 1],
      [2, 3],
    ]);
    const { comp, count } = tarjan(4, offsets, targets);
    expect(count).toBe(3);
    expect(comp[1]).toBe(comp[2]);
    expect(comp[3]).toBeLessThan(defined(comp[1], 'comp[1]'));
    expect(comp[1]).toBeLessThan(defined(comp[0], 'comp[0]'));
  });

  it('skips excluded nodes and survives a chain far deeper than the call stack', () => {
    // One cycle through every node but 5, which nothing links to (a removed task).
    const n = 300_000;
    const edges: Array<[number, number]> = [];
    for (let v = 0; v + 1 < n; v++) if (v !== 4 && v !== 5) edges.push([v, v + 1]);
    edges.push([4, 6]);
    edges.push([n - 1, 0]);
    const { offsets, targets } = csr(n, edges);
    expect(tarjan(n, offsets, targets).count).toBe(2);
    const { comp, count } = tarjan(n, offsets, targets, (v) => v !== 5);
    expect(comp[5]).toBe(-1);
    expect(count).toBe(1);
  });
});
