/**
 * A clean-up that runs now and then every `everyMs` after the previous run ended, one run at a
 * time: a run asked for while one is going joins it. A run never fails: its error is handed to
 * `onError` (logged by the owner) and the next run tries again. `close()` stops the schedule and
 * waits for a run in progress, so nothing is removed after the owner closed.
 *
 * Used by the SLURM backend (finished job folders) and the Kubernetes backend (ended Jobs).
 */
export class PeriodicSweep {
  readonly #run: () => Promise<void>;
  readonly #everyMs: number;
  readonly #onError: (err: unknown) => void;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #closed = false;

  constructor(options: {
    /** One sweep. */
    run: () => Promise<void>;
    /** The pause between the end of one scheduled run and the start of the next. */
    everyMs: number;
    onError: (err: unknown) => void;
  }) {
    this.#run = options.run;
    this.#everyMs = options.everyMs;
    this.#onError = options.onError;
  }

  /**
   * Runs now (a close that follows waits for that run), then every `everyMs` after each run
   * ended. Restarts the schedule.
   */
  start(): void {
    if (this.#closed) return;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    void this.now().finally(() => this.#next());
  }

  #next(): void {
    if (this.#closed) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.now().finally(() => this.#next());
    }, this.#everyMs);
    this.#timer.unref();
  }

  /** One run now, or the one in progress; resolves when it is done, never rejects. */
  now(): Promise<void> {
    this.#running ??= this.#run()
      .catch((err: unknown) => this.#onError(err))
      .finally(() => {
        this.#running = undefined;
      });
    return this.#running;
  }

  /** No run starts after this; resolves once a run in progress has ended. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#running;
  }
}
