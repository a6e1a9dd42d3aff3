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
