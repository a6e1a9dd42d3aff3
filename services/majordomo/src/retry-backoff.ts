/**
 * Backoff for builds a chef cancelled without new bytes to plan from (an input no pod holds: a
 * `files.changed` for a file that is not there). Re-planned at once, such a build was sent again
 * and cancelled again about 1,000 times a second until the file was deleted. Instead the task is
 * held as failed (its artefacts say why) and tried again after 1 s, 2 s, 4 s … up to 5 min; an
 * input change re-plans it at once as usual, and a build that succeeds resets its delay.
 */
export class RetryBackoff {
  readonly #attempts = new Map<string, number>();
  readonly #timers = new Map<string, NodeJS.Timeout>();

  constructor(
    readonly firstMs = 1_000,
    readonly maxMs = 300_000,
  ) {}

  /** Schedules `retry` for the task after its next delay (replacing one pending); returns the delay. */
  schedule(taskId: string, retry: () => void): number {
    const n = this.#attempts.get(taskId) ?? 0;
    this.#attempts.set(taskId, n + 1);
    const ms = Math.min(this.firstMs * 2 ** Math.min(n, 30), this.maxMs);
    clearTimeout(this.#timers.get(taskId));
    const timer = setTimeout(() => {
      this.#timers.delete(taskId);
      retry();
    }, ms);
    timer.unref();
    this.#timers.set(taskId, timer);
    return ms;
  }

  /** The task built (or went away): its next cancellation starts from the first delay again. */
  reset(taskId: string): void {
    this.#attempts.delete(taskId);
    clearTimeout(this.#timers.get(taskId));
    this.#timers.delete(taskId);
  }

  stop(): void {
    for (const t of this.#timers.values()) clearTimeout(t);
    this.#timers.clear();
  }
}
