import type { Logger } from '@computepods/bus';

/**
 * Re-puts the chef's declaration every `everyMs`: each put is a KV update MajorDomo sees, and a
 * chef whose updates stop (killed, partitioned) has its rules retired and its work re-planned.
 */
export function startHeartbeat(
  put: () => Promise<unknown>,
  everyMs: number,
  logger: Logger,
): () => void {
  let busy = false;
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    put()
      .catch((err) => logger.warn({ err: (err as Error).message }, 'heartbeat not stored'))
      .finally(() => {
        busy = false;
      });
  }, everyMs);
  return () => clearInterval(timer);
}
