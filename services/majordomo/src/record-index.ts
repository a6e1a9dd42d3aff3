import type { ArtefactRecord, ArtefactStatus } from '@computepods/protocol';
import type { SnapshotRecords } from './snapshot-records.js';

type Rec = ArtefactRecord;

/**
 * Where the index finds a path's id: the graph's (DependencyManager.internedId), whose ids are
 * dense and never change once interned. Undefined: a path the graph does not hold (yet).
 */
export interface PathIds {
  internedId(path: string): number | undefined;
}

/** No path has an id: every record is held by its path. */
const NO_IDS: PathIds = { internedId: () => undefined };

/**
 * The artefact records by path, with what a status answer needs kept as they change: the count
 * per state (a summary costs nothing at 100,000 records) and the paths in order for paging (sorted
 * again only after a path comes or goes, not when a record changes).
 *
 * A record whose path the graph holds is kept by the graph's path id (an array), not in a map of
 * its own: the graph hashes every path already, and a snapshot's records come in its path order,
 * each found by Graph.id's next-id check without a lookup. At 100k artefacts a map of the records
 * by path was ~4 MB of hash table (and as much again while it grew) and ~17 ms of a restart's
 * CPU. Others (auxiliaries, a path the graph interns later) are held by path; such a record moves
 * to its id when next set.
 */
export class RecordIndex {
  /** Records by the graph's path id. */
  readonly #byId: (Rec | undefined)[] = [];
  /** How many entries of #byId hold a record. */
  #held = 0;
  /** Records of paths without an id when they were set. */
  readonly #others = new Map<string, Rec>();
  readonly #counts = new Map<ArtefactStatus, number>();
  /** Every path in UTF-16 code unit order, or undefined once a path came or went. */
  #sorted: string[] | undefined;

  readonly #ids: PathIds;
  /**
   * A snapshot's records not made yet (loadSnapshot): `#lazyAt[id]` is the index in `#lazy` of
   * the record of path id `id`, -1 once made (or none). Each is made when first read and then
   * held in #byId as any other.
   */
  #lazy: SnapshotRecords | undefined;
  #lazyAt = new Int32Array(0);
  /** How many of them are not made yet: at none, the columns are let go. */
  #lazyLeft = 0;

  constructor(ids: PathIds = NO_IDS) {
    this.#ids = ids;
  }

  get(path: string): Rec | undefined {
    const id = this.#ids.internedId(path);
    if (id !== undefined) {
      const rec = this.#byId[id] ?? this.#made(id);
      if (rec) return rec;
    }
    return this.#others.size > 0 ? this.#others.get(path) : undefined;
  }

  /** The record of path id `id` from the snapshot's, made now, if it has one not made yet. */
  #made(id: number): Rec | undefined {
    const i = this.#lazyAt[id] ?? -1;
    if (i < 0 || !this.#lazy) return undefined;
    this.#lazyAt[id] = -1;
    const rec = this.#lazy.record(i);
    if (--this.#lazyLeft === 0) {
      this.#lazy = undefined;
      this.#lazyAt = new Int32Array(0);
    }
    const byId = this.#byId;
    while (byId.length < id) byId.push(undefined);
    byId[id] = rec;
    return rec;
  }

  /**
   * A snapshot's records into an empty index, each made when first read (SnapshotRecords): the
   * counts per state come from its columns. A record with fields no column holds, or whose path
   * the graph does not hold, is made now (few are). As load(), a path given twice keeps its last.
   */
  loadSnapshot(records: SnapshotRecords): void {
    if (this.size > 0) throw new RangeError('RecordIndex.loadSnapshot needs an empty index');
    const lazyAt = new Int32Array(maxId(records.at) + 1).fill(-1);
    const counts: Partial<Record<ArtefactStatus, number>> = {};
    const count = (status: ArtefactStatus, by: number) => {
      counts[status] = (counts[status] ?? 0) + by;
    };
    let left = 0;
    const { at } = records;
    for (let i = 0; i < records.count; i++) {
      const id = at[i] ?? -1;
      // A path given twice: the record before, if held lazily, is dropped (none is made here).
      const was = id < 0 ? -1 : (lazyAt[id] ?? -1);
      if (was >= 0) {
        count(records.status(was), -1);
        lazyAt[id] = -1;
        left--;
        this.#held--;
      }
      if (id < 0 || records.hasMore(i)) {
        const rec = records.record(i);
        const prev = this.#put(rec.path, rec);
        if (prev) count(prev.status, -1);
        count(rec.status, 1);
        continue;
      }
      const prev = this.#byId[id];
      if (prev) {
        count(prev.status, -1);
        this.#byId[id] = undefined;
      } else this.#held++;
      lazyAt[id] = i;
      left++;
      count(records.status(i), 1);
    }
    if (left > 0) {
      this.#lazy = records;
      this.#lazyAt = lazyAt;
      this.#lazyLeft = left;
    }
    for (const [status, n] of Object.entries(counts) as [ArtefactStatus, number][])
      if (n > 0) this.#counts.set(status, n);
    this.#sorted = undefined;
  }

  /** The record by id, made if it is a snapshot's not made yet. */
  #at(id: number): Rec | undefined {
    return this.#byId[id] ?? this.#made(id);
  }

  /** How many ids may hold a record. */
  #idCount(): number {
    return Math.max(this.#byId.length, this.#lazyAt.length);
  }

  /**
   * Records into an empty index, each by its own path: one write per record where set() makes
   * several (a snapshot's 100,000s at a restart). A path given twice keeps its last record, as
   * set() would.
   */
  load(records: Iterable<Rec>): void {
    if (this.size > 0) throw new RangeError('RecordIndex.load needs an empty index');
    const counts: Partial<Record<ArtefactStatus, number>> = {};
    for (const rec of records) {
      const prev = this.#put(rec.path, rec);
      if (prev) counts[prev.status] = (counts[prev.status] ?? 0) - 1;
      counts[rec.status] = (counts[rec.status] ?? 0) + 1;
    }
    for (const [status, n] of Object.entries(counts) as [ArtefactStatus, number][])
      if (n > 0) this.#counts.set(status, n);
    this.#sorted = undefined;
  }

  set(path: string, rec: Rec): void {
    const prev = this.#put(path, rec);
    if (prev) this.#count(prev.status, -1);
    else this.#sorted = undefined;
    this.#count(rec.status, 1);
  }

  delete(path: string): void {
    const id = this.#ids.internedId(path);
    const prev = id === undefined ? undefined : this.#at(id);
    if (prev) {
      this.#byId[id as number] = undefined;
      this.#held--;
    } else {
      const other = this.#others.get(path);
      if (!other) return;
      this.#others.delete(path);
      this.#count(other.status, -1);
      this.#sorted = undefined;
      return;
    }
    this.#count(prev.status, -1);
    this.#sorted = undefined;
  }

  /** Every record: those by id in id order, then the others (a snapshot's made as they come). */
  values(): IterableIterator<Rec> {
    return new Records(
      (id) => this.#at(id),
      () => this.#idCount(),
      this.#others.values(),
    );
  }

  /**
   * The records in state `status`, as values() gives them, making only those of a snapshot's
   * not made yet that are in it (their state is read from its columns).
   */
  *withStatus(status: ArtefactStatus): Generator<Rec> {
    if (!this.#counts.has(status)) return;
    const lazy = this.#lazy;
    const lazyAt = this.#lazyAt;
    for (let id = 0; id < this.#idCount(); id++) {
      const i = lazyAt[id] ?? -1;
      if (i >= 0 && lazy?.status(i) !== status) continue;
      const rec = this.#at(id);
      if (rec?.status === status) yield rec;
    }
    for (const rec of this.#others.values()) if (rec.status === status) yield rec;
  }

  /**
   * Every record's path, state and whether it is an auxiliary's, as values() would give them,
   * without making the records of a snapshot's not made yet (read from its columns: none of
   * them is an auxiliary's, whose field the columns do not hold). One object, written over for
   * each record: read it before the next.
   */
  *states(): Generator<Readonly<RecordState>> {
    const lazy = this.#lazy;
    const lazyAt = this.#lazyAt;
    const byId = this.#byId;
    const out: RecordState = { path: '', status: 'source', auxiliary: undefined };
    for (let id = 0; id < this.#idCount(); id++) {
      const rec = byId[id];
      const i = lazyAt[id] ?? -1;
      if (rec) {
        out.path = rec.path;
        out.status = rec.status;
        out.auxiliary = rec.auxiliary;
      } else if (i >= 0 && lazy) {
        out.path = lazy.path(i);
        out.status = lazy.status(i);
        out.auxiliary = undefined;
      } else continue;
      yield out;
    }
    for (const rec of this.#others.values()) {
      out.path = rec.path;
      out.status = rec.status;
      out.auxiliary = rec.auxiliary;
      yield out;
    }
  }

  get size(): number {
    return this.#held + this.#others.size;
  }

  /** Records per state (states with none left out). */
  counts(): Partial<Record<ArtefactStatus, number>> {
    return Object.fromEntries(this.#counts);
  }

  /**
   * Up to `limit` records by path after `cursor` (a path, not necessarily held), of the paths
   * starting with `prefix`; `next` is the cursor of the page after, when there is one.
   */
  page(limit: number, cursor?: string, prefix = ''): { records: Rec[]; next?: string } {
    this.#sorted ??= Array.from(this.states(), (r) => r.path).sort((a, b) =>
      a < b ? -1 : a > b ? 1 : 0,
    );
    const paths = this.#sorted;
    // The first path after the cursor (or at the prefix): a binary search.
    const from = cursor !== undefined && cursor >= prefix ? cursor : prefix;
    let lo = 0;
    let hi = paths.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const p = paths[mid] ?? '';
      if (p < from || (cursor !== undefined && from === cursor && p === cursor)) lo = mid + 1;
      else hi = mid;
    }
    const records: Rec[] = [];
    let i = lo;
    for (; i < paths.length && records.length < limit; i++) {
      const path = paths[i] ?? '';
      if (!path.startsWith(prefix)) break;
      const rec = this.get(path);
      if (rec) records.push(rec);
    }
    const more = i < paths.length && (paths[i] ?? '').startsWith(prefix);
    const last = records.at(-1);
    return more && last ? { records, next: last.path } : { records };
  }

  /**
   * Holds `rec` as `path`'s record, by the path's id when it has one (moving a record held by
   * path before the graph interned it); returns the record it replaces.
   */
  #put(path: string, rec: Rec): Rec | undefined {
    const id = this.#ids.internedId(path);
    if (id === undefined) {
      const prev = this.#others.get(path);
      this.#others.set(path, rec);
      return prev;
    }
    const byId = this.#byId;
    let prev = byId[id] ?? this.#made(id);
    if (!prev) {
      this.#held++;
      prev = this.#others.size > 0 ? this.#others.get(path) : undefined;
      if (prev) this.#others.delete(path);
    }
    // Filled in id order at a restart: the list grows at its end, without holes.
    while (byId.length < id) byId.push(undefined);
    byId[id] = rec;
    return prev;
  }

  #count(status: ArtefactStatus, by: number): void {
    const n = (this.#counts.get(status) ?? 0) + by;
    if (n > 0) this.#counts.set(status, n);
    else this.#counts.delete(status);
  }
}

/**
 * RecordIndex.values(): the records by id, skipping ids without one, then the others. An
 * iterator of its own, not a generator: a restart passes over every record twice (its status
 * refresh, its stuck cycles), and over 100,000 records a generator took ~2 ms a pass against
 * ~1 ms (node 20, a loop of 15 passes).
 */
class Records implements IterableIterator<Rec> {
  #id = 0;

  constructor(
    private readonly byId: (id: number) => Rec | undefined,
    private readonly ids: () => number,
    private readonly others: IterableIterator<Rec>,
  ) {}

  [Symbol.iterator](): IterableIterator<Rec> {
    return this;
  }

  next(): IteratorResult<Rec> {
    while (this.#id < this.ids()) {
      const rec = this.byId(this.#id++);
      if (rec) return { value: rec, done: false };
    }
    return this.others.next();
  }
}

function maxId(ids: Int32Array): number {
  let max = -1;
  for (const id of ids) if (id > max) max = id;
  return max;
}

/** A record's path, state and whether it is an auxiliary's (RecordIndex.states). */
export interface RecordState {
  path: string;
  status: ArtefactStatus;
  auxiliary: boolean | undefined;
}
