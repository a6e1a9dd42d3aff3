import { createHash } from 'node:crypto';
import { DependencyManager } from '@computepods/depgraph';
import type { ArtefactRecord } from '@computepods/protocol';
import { describe, expect, it } from 'vitest';
import { RecordIndex } from './record-index.js';
import {
  compactRecords,
  expandRecords,
  runsOf,
  type StoredRecords,
  snapshotRecords,
} from './snapshot-records.js';

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

/** A column's values from its runs (runsOf's pairs of step and count). */
function values(runs: unknown[]): number[] {
  const out: number[] = [];
  let v = 0;
  for (let i = 0; i < runs.length; i += 2)
    for (let n = 0; n < (runs[i + 1] as number); n++) {
      v += runs[i] as number;
      out.push(v);
    }
  return out;
}

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
    const at = values(compact.at);
    expect(at).toEqual(
      dm
        .pathsInOrder()
        .flatMap((p, id) => (recs.some((r) => r.path === p) ? [id] : []))
        .concat([-1]),
    );
    const a = at.indexOf(dm.pathsInOrder().indexOf('obj/a.o'));
    const fromGraph = [compact.sha256, compact.cutoff, compact.producer].map((c) => values(c)[a]);
    expect(fromGraph).toEqual([2, 2, 2]);
    expect(compact.strings).not.toContain('obj/a.o');
    expect(compact.strings).not.toContain(dm.strings('obj/a.o')?.hash);
    expect(compact.rest).toEqual([[compact.count - 1, { path: 'paper.log', auxiliary: true }]]);
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

  it('held lazily answer as the records loaded whole, and keep what the graph held then', () => {
    const dm = graph();
    const recs = records(dm);
    (recs[0] as ArtefactRecord & Record<string, unknown>).passes = 2; // a field of its own
    const compact = stored(compactRecords(dm, index(recs)));
    const restored = DependencyManager.fromBytes(dm.exportBytes());
    const lazy = snapshotRecords(restored, compact);
    if (typeof lazy === 'string') throw new Error(lazy);
    const held = new RecordIndex(restored);
    held.loadSnapshot(lazy);
    const whole = new RecordIndex(restored);
    whole.load(recs);
    // Its states and paths from the columns, before any record is made.
    const states = Array.from(held.states(), (s) => ({ ...s }));
    expect(states).toEqual(
      Array.from(whole.values(), ({ path, status, auxiliary }) => ({ path, status, auxiliary })),
    );
    expect(held.size).toBe(recs.length);
    expect(held.counts()).toEqual(whole.counts());
    expect(held.page(2)).toEqual(whole.page(2));
    expect([...held.withStatus('source')]).toEqual([...whole.withStatus('source')]);
    // The graph changes after the restore: a record made later is the snapshot's still.
    restored.setArtefact('obj/a.o', sha('edited'));
    expect(held.get('obj/a.o')).toEqual(recs.find((r) => r.path === 'obj/a.o'));
    expect(byPath([...held.values()])).toEqual(byPath(recs));
    // Changed afterwards as any index is.
    held.delete('src/a.c');
    held.set('obj/b.o', { ...(held.get('obj/b.o') as ArtefactRecord), status: 'up_to_date' });
    expect(held.counts()).toEqual({ missing: 1, source: 1, up_to_date: 3 });
    expect(held.size).toBe(recs.length - 1);
  });

  it('held lazily keep the last record of a path given twice, as load() does', () => {
    const dm = graph();
    const recs = records(dm);
    const compact = stored(compactRecords(dm, index(recs)));
    // src/c.c's record stored again under src/a.c's path id (its hash is src/a.c's too).
    const at = values(compact.at);
    const ids = dm.pathsInOrder();
    const a = at.indexOf(ids.indexOf('src/a.c'));
    const c = at.indexOf(ids.indexOf('src/c.c'));
    at[c] = at[a] as number;
    compact.at = runsOf(at);
    const lazy = snapshotRecords(dm, compact);
    if (typeof lazy === 'string') throw new Error(lazy);
    const held = new RecordIndex(dm);
    held.loadSnapshot(lazy);
    const whole = new RecordIndex(dm);
    whole.load(expandRecords(dm, compact) as ArtefactRecord[]);
    expect(held.size).toBe(recs.length - 1);
    expect(held.counts()).toEqual(whole.counts());
    expect(held.get('src/a.c')).toEqual(whole.get('src/a.c'));
    // The later of the two in the stored order.
    expect(held.get('src/a.c')?.producer).toBe(a > c ? undefined : 'hand:c');
    expect(byPath([...held.values()])).toEqual(byPath([...whole.values()]));
  });

  it('are runs of values: repeats and steps of one are one run each', () => {
    expect(runsOf([])).toEqual([]);
    expect(runsOf([5, 5, 5, 5])).toEqual([5, 1, 0, 3]);
    expect(runsOf([0, 1, 2, 3, 7, -1, -1])).toEqual([0, 1, 1, 3, 4, 1, -8, 1, 0, 1]);
    for (const vs of [[3], [1, 2, 3], [-1, 0, 4, 4, 4, 9, 10, 11], [2, 2, 1, 1, 0, 0]])
      expect(values(runsOf(vs))).toEqual(vs);
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
    /** A column's value at record `i` set to `v`. */
    const set = (column: unknown[], i: number, v: number) => {
      const vs = values(column);
      vs[i] = v;
      column.splice(0, column.length, ...runsOf(vs));
    };
    expect(bad((rs) => set(rs.at, 0, 999))).toMatch(/names no path of its graph/);
    expect(bad((rs) => rs.at.splice(0, 1, 'x'))).toMatch(/column at: run 0 is not one/);
    const missing = values(compact.at).indexOf(dm.pathsInOrder().indexOf('src/b.c'));
    expect(bad((rs) => set(rs.sha256, missing, 2))).toMatch(/its graph has no hash/);
    expect(bad((rs) => set(rs.producer, missing, 2))).toMatch(/its graph has no producer/);
    expect(bad((rs) => rs.rest.splice(0, 1))).toMatch(/has no path/);
    expect(bad((rs) => rs.status.splice(-1, 1, 0))).toMatch(/column status: run .* is not one/);
    expect(bad((rs) => rs.status.splice(-1, 1, 9))).toMatch(/column status has .* of 6 values/);
    expect(bad((rs) => set(rs.updated, 0, 9999))).toMatch(/time code 9999/);
    expect(bad((rs) => rs.size.pop())).toMatch(/record sizes: 5 of 6/);
  });
});
