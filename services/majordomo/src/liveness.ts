import type { Bus, TypedKv } from '@computepods/bus';
import { kvKey, type RulesDeclared, streams, subjects } from '@computepods/protocol';

/** How long a chef may go without re-putting its declaration (CP_CHEF_TIMEOUT_MS, default 15 s). */
export function chefTimeoutMs(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.CP_CHEF_TIMEOUT_MS;
  const n = Number(raw ?? 15_000);
  if (!Number.isInteger(n) || n < 1)
    throw new Error(`CP_CHEF_TIMEOUT_MS must be a positive integer, got ${JSON.stringify(raw)}`);
  return n;
}

/**
 * Chef liveness. A chef re-puts its declaration every CP_CHEF_HEARTBEAT_MS; one not heard from
 * for the timeout is taken for dead and its declaration is deleted. MajorDomo's own watch of the
 * rules bucket turns that into retiring its rules: builds it held are cancelled and re-planned,
 * and a chef declaring the same rules takes them over. Its requests still queued are purged, so
 * a chef that comes back does not build what was re-planned elsewhere.
 *
 * Time is measured here, from when each put was seen: no clock is compared across hosts. After a
 * MajorDomo restart every chef gets a full timeout to be heard from again.
 */
export async function watchChefLiveness(
  bus: Bus,
  rulesKv: TypedKv<typeof RulesDeclared>,
  timeoutMs = chefTimeoutMs(),
): Promise<() => void> {
  const seen = new Map<string, { at: number; revision: number }>();
  const stopWatch = await rulesKv.watch((chef, decl, revision) => {
    if (decl) seen.set(chef, { at: Date.now(), revision });
    else seen.delete(chef);
  });
  let busy = false;
  const check = async () => {
    const now = Date.now();
    for (const [chef, { at, revision }] of seen) {
      if (now - at < timeoutMs) continue;
      seen.delete(chef);
      try {
        // Only the revision seen: a chef that re-declared meanwhile is alive and stays.
        await rulesKv.kv.delete(kvKey(chef), { previousSeq: revision });
      } catch (err) {
        bus.logger.debug({ chef, err: (err as Error).message }, 'chef re-declared; kept');
        continue;
      }
      bus.logger.warn(
        { chef, silentMs: now - at, timeoutMs },
        'chef not heard from; its rules are retired and its work re-planned',
      );
      await bus.jsm.streams
        .purge(streams.builds(bus.project), { filter: subjects.buildRequest(bus.project, chef) })
        .catch((err) =>
          bus.logger.warn({ chef, err: (err as Error).message }, 'could not purge its queue'),
        );
    }
  };
  const timer = setInterval(
    () => {
      if (busy) return;
      busy = true;
      void check().finally(() => {
        busy = false;
      });
    },
    Math.max(Math.floor(timeoutMs / 4), 100),
  );
  return () => {
    clearInterval(timer);
    stopWatch();
  };
}
