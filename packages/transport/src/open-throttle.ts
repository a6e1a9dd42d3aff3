import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Spaces connection opens to one host at least minIntervalMs apart, across every target on
 * that host (AiiDA's safe_interval): login nodes ban clients that open too fast.
 */
export class OpenThrottle {
  readonly #next = new Map<string, number>();
  readonly #minIntervalMs: number;

  constructor(minIntervalMs: number) {
    this.#minIntervalMs = minIntervalMs;
  }

  /** Waits for this host's next open slot; returns true when it had to wait. */
  async wait(host: string): Promise<boolean> {
    const now = Date.now();
    const at = Math.max(now, this.#next.get(host) ?? 0);
    this.#next.set(host, at + this.#minIntervalMs);
    if (at <= now) return false;
    await sleep(at - now);
    return true;
  }
}
