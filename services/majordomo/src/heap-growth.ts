import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { Logger } from '@computepods/bus';

/** The heap growing percent this process set (0: none set, V8's own). */
let limited = 0;

/**
 * V8's heap growing percent (CP_HEAP_GROWING_PERCENT; 0: V8's own), read at each full
 * collection to set the next one's limit: a restore, a snapshot stored and graph answers leave
 * garbage that V8 otherwise lets grow to up to 4 times what was live before collecting it
 * (issue #13). Set once restored (restoreUnderOwnGrowth's settle), by a full restore as it
 * begins (majordomo.ts), and by a standby as it starts standing by (main.ts): before a restore
 * little is allocated.
 */
export function limitHeapGrowth(percent: number): void {
  if (percent > 0 && percent !== limited) {
    setFlagsFromString(`--heap-growing-percent=${percent}`);
    limited = percent;
  }
}

/**
 * Runs a restore under V8's own heap growth; settle() then sets `percent` again and collects
 * once, so the limit V8 goes on with is `percent` past what the restore left live, as if set
 * throughout. MajorDomo settles once it has said it is ready: the collection (~80 ms at 100k
 * artefacts) is then no longer part of a restart's time to ready (pnpm bench scale's cold start),
 * and what runs between (the watches, the HTTP server) allocates little. A restore that fails
 * sets `percent` again at once.
 *
 * A restore only adds: what it allocates stays live (graph, records), so at 25 % V8 ran a full
 * collection each time the heap grew by a quarter (8 at 100k artefacts, marking ~0.7 s of CPU on
 * its helper threads besides the pauses) and freed almost nothing. Under V8's own growth it runs
 * a few; the one collection after it sets the limit to `percent` past what is live, where
 * leaving V8's own limit in place let the peak grow by ~40 MiB once ready (issue #15, pnpm bench
 * scale). A restore from every record (no snapshot) sets `percent` again as it begins
 * (majordomo.ts): it parses every record, garbage a snapshot load does not make, and under V8's
 * own growth its resident peak went from 361 to 660 MiB. With `percent` 0 (V8's own throughout)
 * nothing is changed or collected.
 *
 * V8's flags are left as they were at start until then, unless something set the limit before
 * (a standby): a start's code cache is taken as the flags first change (scripts/code-cache.mjs:
 * V8 refuses a cache made under other flags), so a restart's cache then holds the restore's code,
 * compiled once, instead of each restart compiling it again (~40 ms of CPU at 100k artefacts).
 */
export async function restoreUnderOwnGrowth<T>(
  percent: number,
  logger: Logger,
  restore: () => Promise<T>,
): Promise<{ restored: T; settle(): void }> {
  if (percent <= 0) return { restored: await restore(), settle: () => undefined };
  if (limited > 0) {
    setFlagsFromString('--heap-growing-percent=0');
    limited = 0;
  }
  let restored: T;
  try {
    restored = await restore();
  } catch (err) {
    limitHeapGrowth(percent);
    throw err;
  }
  let settled = false;
  return {
    restored,
    settle() {
      if (settled) return;
      settled = true;
      limitHeapGrowth(percent);
      const t0 = performance.now();
      try {
        collectGarbage();
        const heapMiB = Math.round(process.memoryUsage().heapUsed / 1048576);
        logger.info(
          { ms: Math.round(performance.now() - t0), heapMiB },
          'heap collected once restored',
        );
      } catch (err) {
        // setFlagsFromString after start is outside Node's promises: a Node where gc() cannot be
        // had this way starts all the same, its limit set at V8's next own collection.
        logger.warn({ err: (err as Error).message }, 'heap not collected once restored');
      }
    },
  };
}

/** A full collection (V8's gc(), exposed to a new context only: not to this process's code). */
function collectGarbage(): void {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  gc();
}
