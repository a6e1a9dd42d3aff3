import { DependencyManager } from '@computepods/depgraph';
import type { ArtefactRecord } from '@computepods/protocol';
import { describe, expect, it } from 'vitest';
import { RecordIndex } from './record-index.js';

const rec = (path: string, status: ArtefactRecord['status']): ArtefactRecord => ({
  path,
  status,
  sha256: null,
  size: 0,
  pods: [],
  updated: '2026-12-06T00:00:00.000Z',
});

describe('RecordIndex.load', () => {
  it('holds what set() one record at a time holds: records, counts per state, pages', () => {
    const records = [
      rec('b/x.o', 'up_to_date'),
      rec('a/y.c', 'source'),
      rec('c/z', 'stale'),
      rec('a/y.c', 'stale'), // a path twice: the last record, as set() keeps it
      rec('a/w.c', 'source'),
    ];
    const loaded = new RecordIndex();
    loaded.load(records);
    const set = new RecordIndex();
    for (const r of records) set.set(r.path, r);
    expect(loaded.size).toBe(4);
    expect(loaded.counts()).toEqual(set.counts());
    expect(loaded.counts()).toEqual({ source: 1, stale: 2, up_to_date: 1 });
    expect(loaded.get('a/y.c')?.status).toBe('stale');
    expect(loaded.page(2)).toEqual(set.page(2));
    expect(loaded.page(10, 'a/y.c')).toEqual(set.page(10, 'a/y.c'));
    // Changed afterwards as any index is.
    loaded.set('c/z', rec('c/z', 'up_to_date'));
    loaded.delete('a/w.c');
    expect(loaded.counts()).toEqual({ stale: 1, up_to_date: 2 });
    expect(() => loaded.load([])).toThrow(RangeError);
  });
});

describe('RecordIndex by the graph path ids', () => {
  const hash = 'a'.repeat(64);

  /** Every answer of an index, to compare one held by ids with one held by paths. */
  const answers = (i: RecordIndex, paths: string[]) => ({
    size: i.size,
    counts: i.counts(),
    got: paths.map((p) => i.get(p)?.status),
    values: [...i.values()].map((r) => `${r.path} ${r.status}`).sort(),
    pages: [i.page(2), i.page(10, 'b'), i.page(10, undefined, 'src/')],
  });

  it('answers as an index by path does, records of paths the graph lacks or interns later too', () => {
    const dm = new DependencyManager();
    dm.setArtefact('src/a.c', hash);
    dm.setArtefact('src/b.c', hash);
    const byId = new RecordIndex(dm);
    const byPath = new RecordIndex();
    const paths = ['src/a.c', 'src/b.c', 'aux/x.log', 'src/later.c', 'none'];
    const both = (f: (i: RecordIndex) => void) => {
      f(byId);
      f(byPath);
    };
    both((i) =>
      i.load([
        rec('src/b.c', 'source'),
        rec('aux/x.log', 'up_to_date'),
        rec('src/a.c', 'source'),
        rec('src/later.c', 'stale'), // not interned yet: held by its path
        rec('src/a.c', 'stale'), // a path twice: the last record
      ]),
    );
    expect(answers(byId, paths)).toEqual(answers(byPath, paths));
    expect(byId.counts()).toEqual({ source: 1, stale: 2, up_to_date: 1 });
    // The graph interns the path afterwards: its record is found, then replaced, not doubled.
    dm.setArtefact('src/later.c', hash);
    expect(byId.get('src/later.c')?.status).toBe('stale');
    both((i) => i.set('src/later.c', rec('src/later.c', 'source')));
    expect(answers(byId, paths)).toEqual(answers(byPath, paths));
    expect(byId.size).toBe(4);
    both((i) => {
      i.delete('src/later.c');
      i.delete('src/a.c');
      i.delete('aux/x.log');
      i.delete('none');
    });
    expect(answers(byId, paths)).toEqual(answers(byPath, paths));
    expect(byId.size).toBe(1);
    expect(byId.counts()).toEqual({ source: 1 });
    // Set again after a delete, and a path the graph lacks set twice.
    both((i) => {
      i.set('src/a.c', rec('src/a.c', 'up_to_date'));
      i.set('aux/y.log', rec('aux/y.log', 'stale'));
      i.set('aux/y.log', rec('aux/y.log', 'up_to_date'));
    });
    expect(answers(byId, [...paths, 'aux/y.log'])).toEqual(
      answers(byPath, [...paths, 'aux/y.log']),
    );
    expect(byId.counts()).toEqual({ source: 1, up_to_date: 2 });
  });
});
