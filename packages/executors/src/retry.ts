import { setTimeout as sleep } from 'node:timers/promises';
import { isRetryable } from './errors.js';

/** Exponential backoff for transient failures, as AiiDA's transport tasks do. */
export interface RetryPolicy {
  /** Tries in all, the first included. */
  readonly attempts: number;
  readonly baseMs: number;
  readonly maxMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 5, baseMs: 1_000, maxMs: 60_000 };

/** Delay before try number `attempt` (1-based; the first try has none): base·2^(n-2), capped. */
export function backoffMs(policy: RetryPolicy, attempt: number): number {
  if (attempt <= 1) return 0;
  return Math.min(policy.baseMs * 2 ** (attempt - 2), policy.maxMs);
}

/**
 * Calls fn until it succeeds, a failure is not transient (thrown at once), or the tries run
 * out (the last error is thrown). `onRetry` sees each transient failure before the wait.
 */
export async function withRetry<T>(
  policy: RetryPolicy,
  fn: (attempt: number) => Promise<T>,
  onRetry?: (err: unknown, attempt: number, delayMs: number) => void,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      if (!isRetryable(err) || attempt >= policy.attempts) throw err;
      const delay = backoffMs(policy, attempt + 1);
      onRetry?.(err, attempt, delay);
      await sleep(delay);
    }
  }
}
