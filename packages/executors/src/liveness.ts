/**
 * Whether this process can show it never looked dead since a moment: an epoch, bumped whenever
 * it may have (its connection dropped, its event loop stalled). A local task queued at epoch E
 * may be started before its running record is stored while the epoch is still E: nobody
 * (MajorDomo's runner liveness, CP_RUNNER_DEAD_S) can have taken it from this runner meanwhile,
 * which takes far longer silence than a stall this notices.
 */
export interface Liveness {
  /** The current epoch; reading it also notices a stall still going on (no tick for too long). */
  epoch(): number;
}

export interface LoopLivenessOptions {
  /** A stall of the event loop this long bumps the epoch (keep it far below CP_RUNNER_DEAD_S). */
  readonly stallMs: number;
  /** Between two ticks of the watch (default stallMs / 4). */
  readonly tickMs?: number;
  /** The clock (ms, monotonic; tests move it on). */
  readonly now?: () => number;
}

/**
 * The event loop's side of Liveness, plus `dropped()` for whoever owns the connection. A tick
 * that comes late by stallMs or more bumps the epoch; so does reading the epoch when the last
 * tick is that old (a process just thawed from SIGSTOP runs its I/O callbacks before its timers).
 */
export class LoopLiveness implements Liveness {
  readonly #stallMs: number;
  readonly #tickMs: number;
  readonly #now: () => number;
  readonly #timer: NodeJS.Timeout;
  #epoch = 0;
  #lastTick: number;
  #closed = false;

  constructor(options: LoopLivenessOptions) {
    this.#stallMs = options.stallMs;
    this.#tickMs = options.tickMs ?? Math.max(1, Math.floor(options.stallMs / 4));
    this.#now = options.now ?? (() => performance.now());
    this.#lastTick = this.#now();
    this.#timer = setInterval(() => this.#tick(), this.#tickMs);
    this.#timer.unref();
  }

  epoch(): number {
    // Closed: nothing is watched, so no two reads agree.
    if (this.#closed) return ++this.#epoch;
    this.#tick();
    return this.#epoch;
  }

  /** The connection dropped (or came back): anything may have happened meanwhile. */
  dropped(): void {
    this.#epoch++;
  }

  /** Stops watching; from now on the epoch moves at every read. */
  close(): void {
    this.#closed = true;
    clearInterval(this.#timer);
  }

  #tick(): void {
    const now = this.#now();
    if (now - this.#lastTick >= this.#stallMs) this.#epoch++;
    this.#lastTick = now;
  }
}
