import type { RetryPolicy } from './retry.js';

export interface PollerOptions {
  /** One poll; a rejection counts as a failed poll (logged through onError). */
  poll(): Promise<void>;
  /** After a poll: whether there is still something to watch (no: polling stops until ensure). */
  more(): boolean;
  /** Between two polls. */
  readonly everyMs: number;
  /** Failed polls in a row (the backend's count): polls back off as the retry policy says. */
  failures(): number;
  readonly retry: RetryPolicy;
  onError(err: unknown): void;
}

/**
 * A backend's status polling: one poll at a time, the next one `everyMs` after the last ended
 * (backing off while polls fail), stopping when nothing is left to watch and started again by
 * ensure(). Shared by the SLURM and Kubernetes backends.
 */
export class Poller {
  readonly #o: PollerOptions;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #closed = false;

  constructor(options: PollerOptions) {
    this.#o = options;
  }

  /** Polls after the usual delay, unless a poll is due or under way already. */
  ensure(): void {
    if (this.#closed || this.#timer || this.#running) return;
    this.#timer = setTimeout(() => this.#tick(), this.#o.everyMs);
  }

  /** Polls now; resolves when that poll is done. */
  async now(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#running;
    this.#tick();
    await this.#running;
  }

  /** Stops polling; resolves once a poll under way has ended. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#running;
  }

  #tick(): void {
    this.#timer = undefined;
    this.#running = this.#o
      .poll()
      .catch((err: unknown) => this.#o.onError(err))
      .finally(() => {
        this.#running = undefined;
        if (this.#closed || !this.#o.more()) return;
        const failures = this.#o.failures();
        const { baseMs, maxMs } = this.#o.retry;
        const delay =
          failures > 0 ? Math.min(baseMs * 2 ** (failures - 1), maxMs) : this.#o.everyMs;
        this.#timer = setTimeout(() => this.#tick(), delay);
      });
  }
}
