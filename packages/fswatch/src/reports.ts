import type { DueItem } from './debounce.js';
import type { Stamp } from './stamps.js';

/** Bytes a producer on this machine wrote at a path, as the consumer recorded them. */
export interface ReportedWrite {
  readonly sha256: string;
  readonly size: number;
  /** The file's mtime (ns) when the producer hashed it. */
  readonly mtimeNs: bigint;
}

export interface WriteReportsOptions {
  /** A look at an expected path waits this long for its report at most, then goes ahead. */
  readonly waitMs: number;
  /** Reports kept at most (the oldest go first): one per output whose look has not come. */
  readonly maxReports: number;
  /** Parked looks to make now (their report came, or their wait ran out). */
  readonly release: (items: DueItem[]) => void;
}

/**
 * What the consumer already knows of the files a producer on this machine writes (a build's
 * outputs, which its chef hashes and MajorDomo records): the watcher need neither announce them
 * nor race the report. A path is expected while its producer runs; a look at it is parked until
 * the consumer's record of it arrives (report), then made. A look whose hash, size and mtime are
 * the report's tells the consumer nothing it does not have; anything else (written again after
 * the report, edited by hand, a report that never came) is announced as usual.
 */
export class WriteReports {
  readonly #expected = new Set<string>();
  readonly #reports = new Map<string, ReportedWrite>();
  /** Parked looks: path → when the wait for its report runs out (performance.now()). */
  readonly #parked = new Map<string, number>();
  /** Looks released by reports in this turn, made together at its end (#flush). */
  #released: DueItem[] = [];
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(private readonly o: WriteReportsOptions) {}

  /** Looks waiting for a report, or released and not made yet. */
  get parked(): number {
    return this.#parked.size + this.#released.length;
  }

  /** A producer is writing `path` now and its record will follow. */
  expect(path: string): void {
    if (!this.#closed) this.#expected.add(path);
  }

  /**
   * The consumer's record of `path`: these bytes, written here by a producer, or `undefined`
   * (another state: failed, changed elsewhere, gone). Ends the wait; a parked look is made now.
   */
  report(path: string, write: ReportedWrite | undefined): void {
    this.#expected.delete(path);
    this.#reports.delete(path);
    if (write && !this.#closed) {
      this.#reports.set(path, write);
      if (this.#reports.size > this.o.maxReports)
        this.#reports.delete(this.#reports.keys().next().value as string);
    }
    if (!this.#parked.delete(path)) return;
    // A message of records (a turn of the consumer) reports a build's outputs together: their
    // looks are made as one (one lock check, one stat-and-hash pass), not one by one.
    if (this.#released.push({ path, first: performance.now() }) === 1)
      queueMicrotask(() => this.#flush());
  }

  #flush(): void {
    const items = this.#released;
    this.#released = [];
    if (items.length > 0) this.o.release(items);
  }

  /**
   * Parks a look at an expected path (true), or leaves it to be made now (false). A parked look
   * is released as a new burst (the wait is not the file's: its max-wait starts then).
   */
  park(path: string): boolean {
    if (this.#closed || !this.#expected.has(path)) return false;
    if (!this.#parked.has(path)) this.#parked.set(path, performance.now() + this.o.waitMs);
    this.#arm();
    return true;
  }

  /**
   * True when a look's stamp is what the report says (then the report is used up): the consumer
   * has these bytes. Any look at the path uses up its report, matching or not.
   */
  matches(path: string, s: Stamp): boolean {
    const r = this.#reports.get(path);
    if (!r) return false;
    this.#reports.delete(path);
    return r.sha256 === s.sha256 && r.size === s.size && r.mtimeNs === s.mtimeNs;
  }

  /** Every parked look, for a watcher closing: nothing waits for a report any more. */
  takeAll(): DueItem[] {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    const now = performance.now();
    const items = [
      ...this.#released,
      ...[...this.#parked.keys()].map((path) => ({ path, first: now })),
    ];
    this.#released = [];
    this.#parked.clear();
    this.#expected.clear();
    this.#reports.clear();
    return items;
  }

  /** One timer for the earliest wait to run out (parked looks are in order of their wait). */
  #arm(): void {
    if (this.#timer || this.#parked.size === 0) return;
    const until = this.#parked.values().next().value as number;
    this.#timer = setTimeout(() => this.#expire(), Math.max(1, until - performance.now()));
    this.#timer.unref();
  }

  /** Waits run out: no report came (lost, or the producer's record is another state). */
  #expire(): void {
    this.#timer = undefined;
    const now = performance.now();
    const due: DueItem[] = [];
    for (const [path, until] of this.#parked) {
      if (until > now) break;
      this.#parked.delete(path);
      this.#expected.delete(path);
      due.push({ path, first: now });
    }
    this.#arm();
    if (due.length > 0) this.o.release(due);
  }
}
