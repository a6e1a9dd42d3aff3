import type { ArtefactRecord, ArtefactStatus } from '@computepods/protocol';

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

  constructor(ids: PathIds = NO_IDS) {
    this.#ids = ids;
  }

  get(path: string): Rec | undefined {
    const id = this.#ids.internedId(path);
    if (id !== undefined) {
      const rec = this.#byId[id];
      if (rec) return rec;
    }
    return this.#others.size > 0 ? this.#others.get(path) : undefined;
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
    const prev = id === undefined ? undefined : this.#byId[id];
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

  /** Every record: those by id in id order, then the others. */
  values(): IterableIterator<Rec> {
    return new Records(this.#byId, this.#others.values());
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
    this.#sorted ??= Array.from(this.values(), (r) => r.path).sort((a, b) =>
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
    let prev = byId[id];
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
    private readonly byId: readonly (Rec | undefined)[],
    private readonly others: IterableIterator<Rec>,
  ) {}

  [Symbol.iterator](): IterableIterator<Rec> {
    return this;
  }

  next(): IteratorResult<Rec> {
    const byId = this.byId;
    while (this.#id < byId.length) {
      const rec = byId[this.#id++];
      if (rec) return { value: rec, done: false };
    }
    return this.others.next();
  }
}
