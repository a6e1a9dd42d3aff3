import type { Logger } from '@computepods/bus';

/**
 * Puts left unanswered at once before a beat is skipped: a put sent as NATS went away waits for
 * JetStream's whole request timeout (5 s), longer than a short chef timeout. Were the next beats
 * held until it gave up, MajorDomo could retire a live chef right after NATS came back; instead
 * they go out (the client buffers them while it reconnects), and a bounded number piles up.
 */
const MAX_OUTSTANDING = 3;

/**
 * Re-puts the chef's declaration every `everyMs`: each put is a KV update MajorDomo sees, and a
 * chef whose updates stop (killed, partitioned) has its rules retired and its work re-planned.
 */
export function startHeartbeat(
  put: () => Promise<unknown>,
  everyMs: number,
  logger: Logger,
): () => void {
  let outstanding = 0;
  const timer = setInterval(() => {
    if (outstanding >= MAX_OUTSTANDING) return;
    outstanding++;
    put()
      .catch((err) => logger.warn({ err: (err as Error).message }, 'heartbeat not stored'))
      .finally(() => {
        outstanding--;
      });
  }, everyMs);
  return () => clearInterval(timer);
}
