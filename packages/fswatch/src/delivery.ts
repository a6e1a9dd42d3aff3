import type { SentJournal } from './sent-journal.js';
import { type Stamp, type StampCache, sameStat } from './stamps.js';
import type { FileEvent, Logger, WatcherStats } from './types.js';

/** The newest state seen on disk for a path: its stamp, or null when it is gone. */
export type NewState = Stamp | null;

interface Inflight {
  events: FileEvent[];
  updates: Map<string, NewState>;
  attempt: number;
  sending: boolean;
  timer: NodeJS.Timeout | undefined;
  /** Its number in the journal, when it has paths new to the cache. */
  journaled: number | undefined;
}

export interface DeliveryOptions {
  cache: StampCache;
  onBatch: (events: FileEvent[]) => Promise<void>;
  batchMs: number;
  maxBatchSize: number;
  maxPending: number;
  retryInitialMs: number;
  retryMaxMs: number;
  logger: Logger;
  stats: WatcherStats;
  /** True while more changes are being looked at, so a batch is worth holding briefly. */
  isSettling: () => boolean;
  /** The cache changed and should be persisted. */
  onCommit: () => void;
  /** Where each batch's paths new to the cache are written before it goes. */
  journal?: SentJournal;
  /** Pending events were dropped; the caller must rescan to find them again. */
  onOverflow: (retryInMs: number) => void;
}

/**
 * Turns new states into batches of events and hands them to onBatch one batch at a time.
 * The stamp cache is only updated after onBatch resolves, so a crash or a rejection leaves
 * the cache at the last acknowledged state and the next scan reports the change again.
 */
export class Delivery {
  /** Paths whose state on disk differs from the acknowledged one, in arrival order. */
  readonly ready = new Map<string, NewState>();
  private readyAt = 0;
  private inflight: Inflight | null = null;
  private timer: NodeJS.Timeout | undefined;
  private paused = false;
  private flushing = false;
  private closed = false;
  private readonly waiters: Array<() => void> = [];
  /** Consecutive drops: the rescan that follows a drop backs off like a retry. */
  private overflows = 0;
  /** Paths to announce deleted though the cache has no stamp of them (announceGone). */
  private readonly forcedGone = new Set<string>();

  constructor(private readonly o: DeliveryOptions) {}

  /** The newest state known for `path` (ready, then in flight, then acknowledged); null if absent. */
  latest(path: string): Stamp | null {
    const r = this.ready.get(path);
    if (r !== undefined) return r;
    const f = this.inflight?.updates.get(path);
    if (f !== undefined) return f;
    return this.o.cache.get(path) ?? null;
  }

  /** The undelivered state of `path`: a stamp, null (gone), or undefined if none is pending. */
  pendingState(path: string): NewState | undefined {
    const r = this.ready.get(path);
    if (r !== undefined) return r;
    return this.inflight?.updates.get(path);
  }

  /** Paths with an undelivered state that is present (not a delete). */
  *pendingPaths(): Generator<string> {
    for (const [p, s] of this.ready) if (s !== null) yield p;
    if (this.inflight) {
      for (const [p, s] of this.inflight.updates) if (s !== null && !this.ready.has(p)) yield p;
    }
  }

  get maxPending(): number {
    return this.o.maxPending;
  }

  get pending(): number {
    return this.ready.size + (this.inflight?.updates.size ?? 0);
  }

  get idle(): boolean {
    return this.ready.size === 0 && this.inflight === null;
  }

  set(path: string, state: NewState): void {
    if (this.closed) return;
    if (state !== null) this.forcedGone.delete(path);
    if (state === null && this.latest(path) === null) return;
    if (this.ready.size === 0) this.readyAt = performance.now();
    this.ready.set(path, state);
    if (this.pending > this.o.maxPending) this.overflow();
    else this.kick();
  }

  /**
   * `path` is gone, and the consumer may have it though the cache has no stamp of it (a path the
   * journal holds from before a restart): announced deleted all the same.
   */
  announceGone(path: string): void {
    if (this.closed || this.latest(path) !== null) return;
    this.forcedGone.add(path);
    if (this.ready.size === 0) this.readyAt = performance.now();
    this.ready.set(path, null);
    this.kick();
  }

  /**
   * Backpressure for scans: resolves when `n` more states fit under maxPending, or at once
   * while delivery is failing (then the excess is dropped and found by a later rescan).
   */
  async room(n: number): Promise<void> {
    while (
      !this.closed &&
      this.pending > 0 &&
      this.pending + n > this.o.maxPending &&
      !(this.inflight && this.inflight.attempt > 0)
    ) {
      await new Promise<void>((r) => this.waiters.push(r));
    }
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /** Holds batches (a VCS lock exists) or lets them go. */
  setPaused(paused: boolean): void {
    this.paused = paused;
    if (!paused) this.kick();
  }

  /** Sends a batch if one is due; cheap to call often. */
  kick(): void {
    if (this.closed || this.inflight || this.paused || this.ready.size === 0) return;
    const age = performance.now() - this.readyAt;
    if (
      this.flushing ||
      this.ready.size >= Math.min(this.o.maxBatchSize, this.o.maxPending / 2) ||
      age >= this.o.batchMs ||
      !this.o.isSettling()
    ) {
      this.clearTimer();
      this.startBatch();
      return;
    }
    if (this.timer === undefined) {
      this.timer = setTimeout(
        () => {
          this.timer = undefined;
          this.kick();
        },
        Math.max(1, this.o.batchMs - age),
      );
    }
  }

  /** Delivers everything now, retrying until `deadline` (performance.now()); true if all went. */
  async drain(deadline: number): Promise<boolean> {
    this.flushing = true;
    try {
      while (!this.idle && !this.paused && performance.now() < deadline) {
        if (this.inflight && !this.inflight.sending && this.inflight.timer) {
          // Close cannot wait out a long backoff; try again now.
          clearTimeout(this.inflight.timer);
          this.inflight.timer = undefined;
          this.send();
        }
        this.kick();
        await new Promise((r) => setTimeout(r, 5));
      }
      return this.idle;
    } finally {
      this.flushing = false;
    }
  }

  close(): void {
    this.closed = true;
    this.wake();
    this.clearTimer();
    if (this.inflight?.timer) clearTimeout(this.inflight.timer);
  }

  private clearTimer(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private startBatch(): void {
    const cache = this.o.cache;
    const updates = new Map<string, NewState>();
    for (const [p, s] of this.ready) {
      updates.set(p, s);
      if (updates.size >= this.o.maxBatchSize) break;
    }
    for (const p of updates.keys()) this.ready.delete(p);
    if (this.ready.size > 0) this.readyAt = performance.now();

    // Deleted paths, indexed so that a created path with the same inode or bytes pairs as a move.
    const gone = new Map<string, Stamp>();
    const goneByIno = new Map<bigint, string>();
    const goneBySha = new Map<string, string[]>();
    for (const [p, s] of updates) {
      const base = cache.get(p);
      if (s === null && base) {
        gone.set(p, base);
        goneByIno.set(base.ino, p);
        if (base.size > 0) {
          const l = goneBySha.get(base.sha256);
          if (l) l.push(p);
          else goneBySha.set(base.sha256, [p]);
        }
      }
    }
    const movedFrom = new Map<string, string>();
    if (gone.size > 0) {
      for (const [p, s] of updates) {
        if (s === null || cache.get(p)) continue;
        let from = goneByIno.get(s.ino);
        if (from !== undefined && (gone.get(from)?.sha256 !== s.sha256 || movedFrom.has(from))) {
          from = undefined;
        }
        if (from === undefined && s.size > 0) {
          from = goneBySha.get(s.sha256)?.find((f) => !movedFrom.has(f));
        }
        if (from !== undefined) {
          movedFrom.set(from, p);
          movedFrom.set(p, from);
        }
      }
    }

    const events: FileEvent[] = [];
    for (const [p, s] of updates) {
      const base = cache.get(p);
      if (s === null) {
        if (base && !movedFrom.has(p)) {
          events.push({
            kind: 'deleted',
            path: p,
            size: base.size,
            mtimeNs: String(base.mtimeNs),
            sha256: null,
          });
        } else if (!base && this.forcedGone.delete(p)) {
          events.push({ kind: 'deleted', path: p, size: 0, mtimeNs: '0', sha256: null });
        } else if (!base) updates.delete(p);
        continue;
      }
      const ev = { path: p, size: s.size, mtimeNs: String(s.mtimeNs), sha256: s.sha256 };
      if (!base) {
        const from = movedFrom.get(p);
        if (from !== undefined) events.push({ kind: 'moved', ...ev, path: p, from });
        else events.push({ kind: 'created', ...ev });
      } else if (
        base.sha256 !== s.sha256 ||
        (cache.fromFile(base) && !sameStat(base, s.mtimeNs, s.ctimeNs, s.size, s.ino))
      ) {
        // The stamp file is saved a while after each acknowledged batch: a file changed since
        // its saved stamp whose bytes are those again (edited, announced and acknowledged,
        // edited back, killed before that was) may be announced with other bytes last. Its
        // bytes are announced again at a restart (the consumer ignores a hash it already has).
        events.push({ kind: 'changed', ...ev });
      }
      // Same bytes under a new stamp (a touch): no event, the stamp is recorded with the batch.
    }
    // Paths new to the cache are journaled before the batch goes (sent-journal.ts).
    const fresh: string[] = [];
    for (const [p, s] of updates) if (s !== null && !cache.get(p)) fresh.push(p);
    const journaled = fresh.length && this.o.journal ? this.o.journal.record(fresh) : undefined;
    const f: Inflight = {
      events,
      updates,
      attempt: 0,
      sending: false,
      timer: undefined,
      journaled,
    };
    this.inflight = f;
    if (events.length === 0) this.commit(f);
    else this.send();
  }

  private send(): void {
    const f = this.inflight;
    if (!f) return;
    f.sending = true;
    f.timer = undefined;
    let p: Promise<void>;
    try {
      // A copy: the consumer may keep or mutate its array; retries must send the same events.
      p = Promise.resolve(this.o.onBatch(f.events.map((e) => ({ ...e }))));
    } catch (err) {
      p = Promise.reject(err);
    }
    p.then(
      () => {
        if (this.inflight === f) this.commit(f);
      },
      (err: unknown) => {
        if (this.inflight !== f) return;
        f.sending = false;
        f.attempt++;
        this.o.stats.retries++;
        const base = Math.min(this.o.retryInitialMs * 2 ** (f.attempt - 1), this.o.retryMaxMs);
        const delay = Math.round(base * (0.75 + Math.random() * 0.5));
        this.o.logger.warn(
          { err, events: f.events.length, attempt: f.attempt, retryInMs: delay },
          'onBatch rejected; the batch will be retried',
        );
        this.wake();
        if (this.pending > this.o.maxPending) {
          this.overflow();
          return;
        }
        if (this.closed) return;
        f.timer = setTimeout(() => this.send(), this.flushing ? 0 : delay);
      },
    );
  }

  private commit(f: Inflight): void {
    const cache = this.o.cache;
    for (const [p, s] of f.updates) {
      if (s === null) cache.delete(p);
      else cache.set(p, s);
    }
    if (f.journaled !== undefined) this.o.journal?.committed(f.journaled);
    this.o.stats.events += f.events.length;
    if (f.events.length > 0) this.o.stats.batches++;
    this.inflight = null;
    this.overflows = 0;
    this.o.onCommit();
    this.wake();
    this.kick();
  }

  private overflow(): void {
    const f = this.inflight;
    let dropped = this.ready.size;
    this.ready.clear();
    this.clearTimer();
    if (f && !f.sending) {
      if (f.timer) clearTimeout(f.timer);
      dropped += f.events.length;
      this.inflight = null;
    }
    this.overflows++;
    const retryInMs = Math.min(this.o.retryInitialMs * 2 ** this.overflows, this.o.retryMaxMs);
    this.wake();
    this.o.stats.dropped += dropped;
    this.o.logger.warn(
      { dropped, maxPending: this.o.maxPending },
      'too many undelivered changes; dropped from memory, a rescan against the stamps will find them again',
    );
    this.o.onOverflow(retryInMs);
  }
}
