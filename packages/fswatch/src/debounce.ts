interface Entry {
  path: string;
  first: number;
  last: number;
}

export interface DueItem {
  path: string;
  /** When the burst for this path began (performance.now()), for the max-wait rule. */
  first: number;
}

/**
 * Per-path quiet window with a maximum wait. Two insertion-ordered maps make each timer
 * tick cost only the entries that are due: `byLast` is re-inserted on every touch so it
 * stays ordered by last touch, `byFirst` is never reordered so it stays ordered by first.
 */
export class Debouncer {
  private readonly byLast = new Map<string, Entry>();
  private readonly byFirst = new Map<string, Entry>();
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Number.POSITIVE_INFINITY;

  constructor(
    private readonly quietMs: number,
    private readonly maxWaitMs: number,
    private readonly onDue: (items: DueItem[]) => void,
  ) {}

  get size(): number {
    return this.byLast.size;
  }

  has(path: string): boolean {
    return this.byLast.has(path);
  }

  /** Notes activity on `path`; `first` keeps an earlier burst start (a retry after a racing write). */
  touch(path: string, first?: number): void {
    const now = performance.now();
    let e = this.byLast.get(path);
    if (e) {
      this.byLast.delete(path);
      e.last = now;
      if (first !== undefined && first < e.first) {
        // Rare (a retry of an unstable hash): rebuild byFirst order for this entry.
        this.byFirst.delete(path);
        e.first = first;
        this.insertByFirst(e);
      }
    } else {
      e = { path, first: first ?? now, last: now };
      if (first !== undefined) this.insertByFirst(e);
      else this.byFirst.set(path, e);
    }
    this.byLast.set(path, e);
    this.arm(Math.min(e.last + this.quietMs, e.first + this.maxWaitMs));
  }

  /** Removes and returns every pending path regardless of its window. */
  takeAll(): DueItem[] {
    const out = [...this.byFirst.values()].map((e) => ({ path: e.path, first: e.first }));
    this.byLast.clear();
    this.byFirst.clear();
    this.disarm();
    return out;
  }

  close(): void {
    this.byLast.clear();
    this.byFirst.clear();
    this.disarm();
  }

  private insertByFirst(e: Entry): void {
    // Keep byFirst sorted: entries older than e stay, the rest move behind it.
    const later: Entry[] = [];
    for (const x of this.byFirst.values()) if (x.first > e.first) later.push(x);
    for (const x of later) this.byFirst.delete(x.path);
    this.byFirst.set(e.path, e);
    for (const x of later) this.byFirst.set(x.path, x);
  }

  private arm(at: number): void {
    if (this.timer !== undefined && at >= this.timerAt) return;
    this.disarm();
    this.timerAt = at;
    this.timer = setTimeout(() => this.fire(), Math.max(0, at - performance.now()));
  }

  private disarm(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = Number.POSITIVE_INFINITY;
  }

  private fire(): void {
    this.timer = undefined;
    this.timerAt = Number.POSITIVE_INFINITY;
    // Timers may fire a little early; a small tolerance avoids re-arming for 0.3 ms.
    const now = performance.now() + 0.5;
    const due: DueItem[] = [];
    for (const e of this.byLast.values()) {
      if (e.last + this.quietMs > now) break;
      due.push({ path: e.path, first: e.first });
    }
    for (const d of due) {
      this.byLast.delete(d.path);
      this.byFirst.delete(d.path);
    }
    const late: Entry[] = [];
    for (const e of this.byFirst.values()) {
      if (e.first + this.maxWaitMs > now) break;
      late.push(e);
    }
    for (const e of late) {
      this.byLast.delete(e.path);
      this.byFirst.delete(e.path);
      due.push({ path: e.path, first: e.first });
    }
    const headLast = this.byLast.values().next();
    const headFirst = this.byFirst.values().next();
    if (!headLast.done && !headFirst.done) {
      this.arm(
        Math.min(headLast.value.last + this.quietMs, headFirst.value.first + this.maxWaitMs),
      );
    }
    if (due.length > 0) this.onDue(due);
  }
}
