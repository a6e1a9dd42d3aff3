import { createHash } from 'node:crypto';
import { DependencyManager } from '@computepods/depgraph';
import type { ArtefactRecord } from '@computepods/protocol';
import { describe, expect, it } from 'vitest';
import { RecordIndex } from './record-index.js';
import { inGraphOrder } from './restore-state.js';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');
const rec = (path: string): ArtefactRecord => ({
  path,
  status: 'source',
  sha256: sha(path),
  size: 0,
  pods: [],
  updated: '2026-12-06T00:00:00.000Z',
});

describe("a snapshot's records (takeSnapshot)", () => {
  it("come in the graph's path order, then those the graph does not hold, each once", () => {
    const dm = new DependencyManager();
    dm.addRule({ id: 'cc', inputs: ['src/{stem}.c'], outputs: ['obj/{stem}.o'] });
    for (const stem of ['c', 'a', 'b']) dm.setArtefact(`src/${stem}.c`, sha(stem));
    const index = new RecordIndex();
    // Held in another order than the graph's, with two paths the graph never saw.
    index.load(['notes.txt', 'src/b.c', 'obj/a.o', 'src/a.c', 'paper.log', 'src/c.c'].map(rec));
    const artefacts = {
      get: (p: string) => index.get(p),
      records: () => index.values(),
      size: index.size,
    };
    const ordered = inGraphOrder(dm, artefacts).map((r) => r.path);
    const graphOrder = dm.pathsInOrder().filter((p) => index.get(p));
    expect(ordered.slice(0, graphOrder.length)).toEqual(graphOrder);
    expect(ordered.slice(graphOrder.length).sort()).toEqual(['notes.txt', 'paper.log']);
    expect([...ordered].sort()).toEqual([...index.values()].map((r) => r.path).sort());
  });
});
