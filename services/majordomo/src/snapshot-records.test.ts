import { createHash } from 'node:crypto';
import { DependencyManager } from '@computepods/depgraph';
import type { ArtefactRecord } from '@computepods/protocol';
import { describe, expect, it } from 'vitest';
import { RecordIndex } from './record-index.js';
import { compactRecords, expandRecords, type StoredRecords } from './snapshot-records.js';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');
const UPDATED = '2026-12-06T00:00:00.000Z';

/** A graph of three sources and their objects, built once (hashes and producers known). */
function graph(): DependencyManager {
  const dm = new DependencyManager();
  dm.addRule({ id: 'cc', inputs: ['src/{stem}.c'], outputs: ['obj/{stem}.o'] });
  for (const stem of ['c', 'a', 'b']) dm.setArtefact(`src/${stem}.c`, sha(stem));
  for (const t of dm.take()) {
    const out = `obj/${t.id.slice(3)}.o`;
    dm.completed(t.id, { run: t.run, outputs: { [out]: sha(out) } });
  }
  dm.deleteArtefact('src/b.c'); // a path the graph holds without a hash
  return dm;
}

function records(dm: DependencyManager): ArtefactRecord[] {
  const held = (p: string) => dm.strings(p);
  return [
    // A source whose hash the graph holds.
    {
      path: 'src/a.c',
      status: 'source',
      sha256: held('src/a.c')?.hash ?? null,
      cutoff: held('src/a.c')?.hash,
      size: 1,
      pods: ['p1'],
      updated: UPDATED,
    },
    // An output: hash, cutoff and producer as the graph's.
    {
      path: 'obj/a.o',
      status: 'up_to_date',
      sha256: held('obj/a.o')?.hash ?? null,
      cutoff: held('obj/a.o')?.hash,
      size: 2,
      producer: 'cc:a',
      buildId: 'b1',
      pods: ['p1', 'p2'],
      updated: UPDATED,
      written: { pod: 'p1', mtimeNs: '1' },
    },
    // An output whose bytes differ from the graph's hash (cutoff equal), and one without a hash.
    {
      path: 'obj/b.o',
      status: 'stale',
      sha256: sha('other'),
      cutoff: held('obj/b.o')?.hash,
      size: 3,
      producer: 'cc:b',
      pods: [],
      updated: UPDATED,
    },
    { path: 'src/b.c', status: 'missing', sha256: null, size: null, pods: [], updated: UPDATED },
    // A producer the graph does not name, and a path the graph does not hold at all.
    {
      path: 'src/c.c',
      status: 'source',
      sha256: held('src/c.c')?.hash ?? null,
      producer: 'hand:c',
      size: 4,
      pods: [],
      updated: UPDATED,
    },
    {
      path: 'paper.log',
      status: 'up_to_date',
      sha256: sha('log'),
      size: 5,
      auxiliary: true,
      producer: 'cc:a',
      pods: [],
      updated: UPDATED,
    },
  ];
}

const index = (recs: ArtefactRecord[]) => {
  const i = new RecordIndex();
  i.load(recs);
  return { get: (p: string) => i.get(p), records: () => i.values(), size: i.size };
};

/** Through JSON, as a snapshot stores them. */
const stored = (recs: StoredRecords): StoredRecords => JSON.parse(JSON.stringify(recs));
const byPath = (rs: ArtefactRecord[]) => Object.fromEntries(rs.map((r) => [r.path, r]));

/** The records expanded, or the test failed with why they did not fit. */
function whole(dm: DependencyManager, recs: StoredRecords): ArtefactRecord[] {
  const back = expandRecords(dm, recs);
  if (typeof back === 'string') throw new Error(back);
  return back;
}

describe("a snapshot's records (snapshot-records.ts)", () => {
  it('come back whole from what they leave out, with the graph loaded beside them', () => {
    const dm = graph();
    const recs = records(dm);
    const compact = compactRecords(dm, index(recs));
    // In the graph's order, then the one it lacks, its path kept; what the graph holds left out.
    expect(compact.at).toEqual(
      dm
        .pathsInOrder()
        .flatMap((p, id) => (recs.some((r) => r.path === p) ? [id] : []))
        .concat([-1]),
    );
    const a = compact.at.indexOf(dm.pathsInOrder().indexOf('obj/a.o'));
    expect([compact.sha256[a], compact.cutoff[a], compact.producer[a]]).toEqual([2, 2, 2]);
    expect(compact.strings).not.toContain('obj/a.o');
    expect(compact.strings).not.toContain(dm.strings('obj/a.o')?.hash);
    expect(compact.rest).toEqual([[compact.at.length - 1, { path: 'paper.log', auxiliary: true }]]);
    // Each repeated value once.
    expect(compact.strings.filter((s) => s === UPDATED)).toHaveLength(1);
    expect(JSON.stringify(compact).length).toBeLessThan(JSON.stringify(recs).length);
    const restored = DependencyManager.fromBytes(dm.exportBytes());
    const back = whole(restored, stored(compact));
    expect(byPath(back)).toEqual(byPath(recs));
    // The graph's strings are the records'; lists of pods are shared, frozen.
    const obj = back.find((r) => r.path === 'obj/a.o');
    expect(obj?.path).toBe(restored.strings('obj/a.o')?.path);
    expect(Object.isFrozen(obj?.pods)).toBe(true);
  });

  it('keep a field no column holds, and a value of another type, whole', () => {
    const dm = graph();
    const recs = records(dm);
    const odd = recs.find((r) => r.path === 'src/a.c') as ArtefactRecord & Record<string, unknown>;
    odd.error = 'boom';
    odd.passes = 3;
    odd.projections = { '0123456789abcdef': sha('p') };
    odd.extra = { a: 1 };
    odd.buildId = 7 as unknown as string;
    odd.written = { pod: 'p1', mtimeNs: '5', more: true } as unknown as ArtefactRecord['written'];
    const back = whole(dm, stored(compactRecords(dm, index(recs))));
    expect(byPath(back)).toEqual(byPath(recs));
  });

  it('do not fit another graph: a path id it lacks, a hash or producer it does not hold', () => {
    const dm = graph();
    const compact = compactRecords(dm, index(records(dm)));
    const bad = (edit: (rs: StoredRecords) => void) => {
      const rs = stored(compact);
      edit(rs);
      return expandRecords(dm, rs);
    };
    expect(bad((rs) => rs.at.splice(0, 1, 999))).toMatch(/names no path of its graph/);
    expect(bad((rs) => rs.at.splice(0, 1, 'x'))).toMatch(/names no path of its graph/);
    const missing = compact.at.indexOf(dm.pathsInOrder().indexOf('src/b.c'));
    expect(bad((rs) => rs.sha256.splice(missing, 1, 2))).toMatch(/its graph has no hash/);
    expect(bad((rs) => rs.producer.splice(missing, 1, 2))).toMatch(/its graph has no producer/);
    expect(bad((rs) => rs.rest.splice(0, 1))).toMatch(/has no path/);
    expect(bad((rs) => rs.status.pop())).toMatch(/column status has/);
    expect(bad((rs) => rs.updated.splice(0, 1, 9999))).toMatch(/time code 9999/);
  });
});
