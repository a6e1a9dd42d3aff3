import { describe, expect, it } from 'vitest';
import { fastLayout, inputsOf, type Layout, layoutGraph } from './layout.js';
import type { GraphJSON } from './types.js';

const art = (path: string) => ({ path, hash: null, state: 'up_to_date' as const, producer: null });

/**
 * The demo's cycle: src/guide.md → render:guide → out/guide.html → toc:guide → out/guide.toc,
 * read back by render:guide as an optional input; and a compile whose header was discovered.
 */
const demo = (): GraphJSON => ({
  rules: [],
  artefacts: [
    art('out/guide.html'),
    art('out/guide.toc'),
    art('src/guide.md'),
    art('src/a.c'),
    art('src/a.h'),
    art('obj/a.o'),
  ],
  tasks: [
    {
      id: 'compile:a',
      ruleId: 'compile',
      stem: 'a',
      inputs: ['src/a.c'],
      optionalInputs: [],
      discovered: ['src/a.h'],
      outputs: ['obj/a.o'],
      component: 0,
      dirty: false,
    },
    {
      id: 'render:guide',
      ruleId: 'render',
      stem: 'guide',
      inputs: ['src/guide.md'],
      optionalInputs: ['out/guide.toc'],
      discovered: [],
      outputs: ['out/guide.html'],
      component: 1,
      dirty: false,
    },
    {
      id: 'toc:guide',
      ruleId: 'toc',
      stem: 'guide',
      inputs: ['out/guide.html'],
      optionalInputs: [],
      discovered: [],
      outputs: ['out/guide.toc'],
      component: 1,
      dirty: false,
    },
  ],
  components: [
    { id: 0, cyclic: false, tasks: ['compile:a'] },
    { id: 1, cyclic: true, tasks: ['render:guide', 'toc:guide'], pass: 0, passLimit: 5 },
  ],
});

const edge = (l: Layout, id: string) => l.edges.find((e) => e.id === id)?.kind;
const x = (l: Layout, id: string) => {
  const n = l.nodes.find((m) => m.id === id);
  if (!n) throw new Error(`no node ${id}`);
  return n.x;
};

describe('graph layout', () => {
  it('lists every input of a task with its kind, a required one once', () => {
    const [, render] = demo().tasks;
    expect(render && inputsOf(render)).toEqual([
      ['src/guide.md', 'input'],
      ['out/guide.toc', 'optional'],
    ]);
    expect(
      inputsOf({ ...demo().tasks[0], inputs: ['a'], discovered: ['a', 'b'] } as never),
    ).toEqual([
      ['a', 'input'],
      ['b', 'discovered'],
    ]);
  });

  for (const [name, lay] of [
    ['dagre', layoutGraph],
    ['fast', fastLayout],
  ] as const)
    it(`${name}: draws a cycle's read-back and discovered inputs, and ranks the cycle from its source`, () => {
      const l = lay(demo());
      expect(edge(l, 'a:out/guide.toc->t:render:guide')).toBe('optional');
      // It, and only it, closes the cycle.
      expect(l.edges.filter((e) => e.back).map((e) => e.id)).toEqual([
        'a:out/guide.toc->t:render:guide',
      ]);
      expect(edge(l, 'a:src/a.h->t:compile:a')).toBe('discovered');
      expect(edge(l, 'a:src/guide.md->t:render:guide')).toBe('input');
      // The read-back closes the cycle, not the edge from the source: left to right in order.
      const order = ['t:render:guide', 'a:out/guide.html', 't:toc:guide', 'a:out/guide.toc'];
      const xs = order.map((id) => x(l, id));
      expect([...xs].sort((a, b) => a - b)).toEqual(xs);
      expect(new Set(xs).size).toBe(order.length);
      // All four are in the cycle's group.
      for (const id of order) expect(l.nodes.find((n) => n.id === id)?.parent).toBe('c:1');
    });
});
