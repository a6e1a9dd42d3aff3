import type { Stamp } from './stamps.js';

/** How long an inotify event may take to reach us; a change older than this has arrived. */
const EVENT_LATENCY_MS = 25;

export interface RacyDue {
  path: string;
  stamp: Stamp;
}

/**
 * Racy stamps (hashed within the clock granularity of their ctime) must not be trusted by a
 * later stat comparison. While the directory is watched, a write after the hash produces an
 * event, and an event on a racy stamp forces a rehash; so once the clock has passed the
 * granularity and no event came, the stamp can be promoted to verified without reading the
 * file again. That keeps a restart after a fresh save from rehashing it.
 */
export class RacyVerifier {
  private readonly due = new Map<string, { at: number; stamp: Stamp }>();
  private timer: NodeJS.Timeout | undefined;
  /** When the armed timer fires (performance.now()); +∞ when none is. */
  private timerAt = Number.POSITIVE_INFINITY;
  private immediate: NodeJS.Immediate | undefined;
  private closed = false;

  constructor(
    private readonly windowNs: bigint,
    private readonly onDue: (items: RacyDue[]) => void,
  ) {}

  get size(): number {
    return this.due.size;
  }

  /** The wall-clock time (ns) from which `stamp` is no longer racy. */
  verifiedAt(stamp: Stamp): bigint {
    return stamp.ctimeNs + this.windowNs;
  }

  schedule(path: string, stamp: Stamp): void {
    if (this.closed) return;
    const waitMs = Number(this.verifiedAt(stamp) - BigInt(Date.now()) * 1_000_000n) / 1e6;
    const at = performance.now() + Math.max(0, waitMs) + EVENT_LATENCY_MS;
    this.due.set(path, { at, stamp });
    // A timer already armed for no later than this serves it too (it re-arms for the rest):
    // stamps mostly come in the order they fall due, so most need no timer of their own.
    if (this.timer === undefined || at < this.timerAt) this.arm();
  }

  /** An event arrived for `path`: the rehash it causes replaces the promotion. */
  cancel(path: string): void {
    this.due.delete(path);
  }

  close(): void {
    this.closed = true;
    this.due.clear();
    if (this.timer) clearTimeout(this.timer);
    if (this.immediate) clearImmediate(this.immediate);
  }

  private arm(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = Number.POSITIVE_INFINITY;
    if (this.due.size === 0 || this.closed) return;
    let next = Number.POSITIVE_INFINITY;
    for (const d of this.due.values()) if (d.at < next) next = d.at;
    this.timerAt = next;
    this.timer = setTimeout(() => this.fire(), Math.max(1, next - performance.now()));
  }

  private fire(): void {
    this.timer = undefined;
    this.timerAt = Number.POSITIVE_INFINITY;
    const now = performance.now();
    const ready: RacyDue[] = [];
    for (const [path, d] of this.due) if (d.at <= now) ready.push({ path, stamp: d.stamp });
    // Timers run before the poll phase of the event loop: if the loop was busy, events for
    // these paths may still sit unread. setImmediate runs after the poll phase has read them.
    this.immediate = setImmediate(() => {
      this.immediate = undefined;
      const still = ready.filter((r) => this.due.get(r.path)?.stamp === r.stamp);
      for (const r of still) this.due.delete(r.path);
      this.arm();
      if (still.length > 0) this.onDue(still);
    });
  }
}
