import type { ArtefactRecord, ArtefactStatus } from '@computepods/protocol';

type Rec = ArtefactRecord;

/**
 * The artefact records by path, with what a status answer needs kept as they change: the count
 * per state (a summary costs nothing at 100,000 records) and the paths in order for paging (sorted
 * again only after a path comes or goes, not when a record changes).
 */
export class RecordIndex {
  readonly #records = new Map<string, Rec>();
  readonly #counts = new Map<ArtefactStatus, number>();
  /** Every path in UTF-16 code unit order, or undefined once a path came or went. */
  #sorted: string[] | undefined;

  get(path: string): Rec | undefined {
    return this.#records.get(path);
  }

  /**
   * Records into an empty index, each by its own path: one map write per record where set()
   * makes several (a snapshot's 100,000s at a restart). A path given twice keeps its last record,
   * as set() would.
   */
  load(records: Iterable<Rec>): void {
    if (this.#records.size > 0) throw new RangeError('RecordIndex.load needs an empty index');
    const counts: Partial<Record<ArtefactStatus, number>> = {};
    for (const rec of records) this.#records.set(rec.path, rec);
    for (const rec of this.#records.values()) counts[rec.status] = (counts[rec.status] ?? 0) + 1;
    for (const [status, n] of Object.entries(counts) as [ArtefactStatus, number][])
      this.#counts.set(status, n);
    this.#sorted = undefined;
  }

  set(path: string, rec: Rec): void {
    const prev = this.#records.get(path);
    if (prev) this.#count(prev.status, -1);
    else this.#sorted = undefined;
    this.#records.set(path, rec);
    this.#count(rec.status, 1);
  }

  delete(path: string): void {
    const prev = this.#records.get(path);
    if (!prev) return;
    this.#count(prev.status, -1);
    this.#records.delete(path);
    this.#sorted = undefined;
  }

  values(): IterableIterator<Rec> {
    return this.#records.values();
  }

  get size(): number {
    return this.#records.size;
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
    this.#sorted ??= [...this.#records.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
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
      const rec = this.#records.get(path);
      if (rec) records.push(rec);
    }
    const more = i < paths.length && (paths[i] ?? '').startsWith(prefix);
    const last = records.at(-1);
    return more && last ? { records, next: last.path } : { records };
  }

  #count(status: ArtefactStatus, by: number): void {
    const n = (this.#counts.get(status) ?? 0) + by;
    if (n > 0) this.#counts.set(status, n);
    else this.#counts.delete(status);
  }
}
