import { describe, expect, it } from 'vitest';
import { collapseGraph, countStates, folderOf, worstState } from './collapse.js';
import type { GraphJSON } from './types.js';

const task = (
  ruleId: string,
  stem: string,
  inputs: string[],
  outputs: string[],
  component = 0,
) => ({
  id: `${ruleId}:${stem}`,
  ruleId,
  stem,
  inputs,
  optionalInputs: [],
  discovered: [],
  outputs,
  component,
  dirty: false,
});

/** src/{a,b,c}.c → compile → obj/*.o → link → bin/prog; plus a cycle in doc/. */
const graph = (): GraphJSON => {
  const stems = ['a', 'b', 'c'];
  const art = (path: string) => ({
    path,
    hash: null,
    state: 'up_to_date' as const,
    producer: null,
  });
  return {
    rules: [],
    artefacts: [
      ...stems.map((s) => art(`src/${s}.c`)),
      ...stems.map((s) => art(`obj/${s}.o`)),
      art('bin/prog'),
      art('doc/x.html'),
      art('doc/x.toc'),
    ],
    tasks: [
      ...stems.map((s, i) => task('compile', s, [`src/${s}.c`], [`obj/${s}.o`], i + 1)),
      task(
        'link',
        'prog',
        stems.map((s) => `obj/${s}.o`),
        ['bin/prog'],
        4,
      ),
      task('render', 'x', ['doc/x.toc'], ['doc/x.html'], 5),
      task('toc', 'x', ['doc/x.html'], ['doc/x.toc'], 5),
    ],
    components: [
      ...[1, 2, 3, 4].map((id) => ({ id, cyclic: false, tasks: [] as string[] })),
      { id: 5, cyclic: true, tasks: ['render:x', 'toc:x'] },
    ],
  };
};

describe('collapseGraph', () => {
  it('draws each folder as one node and each rule between collapsed folders as one task', () => {
    const { graph: g, folders, rules } = collapseGraph(graph(), new Set());
    expect(g.artefacts.map((a) => a.path).sort()).toEqual(['bin/', 'doc/', 'obj/', 'src/']);
    expect(folders.get('obj/')).toEqual(['obj/a.o', 'obj/b.o', 'obj/c.o']);
    expect(g.tasks.find((t) => t.ruleId === 'compile')).toMatchObject({
      id: 'compile ×3',
      inputs: ['src/'],
      outputs: ['obj/'],
    });
    expect(rules.get('compile ×3')).toEqual(['compile:a', 'compile:b', 'compile:c']);
    expect(g.tasks.find((t) => t.ruleId === 'link')).toMatchObject({
      id: 'link ×1',
      inputs: ['obj/'],
      outputs: ['bin/'],
    });
    // The cycle's tasks, merged, are still its members.
    expect(g.components.find((c) => c.cyclic)?.tasks).toEqual(['render ×1', 'toc ×1']);
  });

  it('shows an open folder artefact by artefact, with the tasks next to it', () => {
    const { graph: g } = collapseGraph(graph(), new Set(['obj']));
    expect(g.artefacts.map((a) => a.path).sort()).toEqual([
      'bin/',
      'doc/',
      'obj/a.o',
      'obj/b.o',
      'obj/c.o',
      'src/',
    ]);
    expect(g.tasks.map((t) => t.id).sort()).toEqual([
      'compile:a',
      'compile:b',
      'compile:c',
      'link:prog',
      'render ×1',
      'toc ×1',
    ]);
    expect(g.tasks.find((t) => t.id === 'compile:a')).toMatchObject({
      inputs: ['src/'],
      outputs: ['obj/a.o'],
    });
  });

  it('names a folder by its path, and takes its worst state', () => {
    expect(folderOf('a/b/c.txt')).toBe('a/b');
    expect(folderOf('top.txt')).toBe('.');
    expect(worstState(['up_to_date', 'stale', 'source'])).toBe('stale');
    expect(worstState(['building', 'failed'])).toBe('failed');
    expect(worstState([])).toBe('source');
    const counts = countStates(['a', 'b', 'c'], (p) => (p === 'b' ? 'failed' : 'up_to_date'));
    expect([...counts]).toEqual([
      ['up_to_date', 2],
      ['failed', 1],
    ]);
  });
});
