import type { Bus } from '@computepods/bus';
import { LoopLiveness } from '@computepods/executors';

/**
 * How long the runner's event loop may stall before a queued task is again recorded running
 * before it starts: far below CP_RUNNER_DEAD_S (at least 7 s), the silence after which MajorDomo
 * takes a runner's queued tasks from it (services/majordomo/src/runner-liveness.ts).
 */
export const STALL_MS = 1_000;

/**
 * The runner's Liveness (executors' liveness.ts): its epoch moves when its event loop stalls
 * for STALL_MS or when its NATS connection drops, comes back or goes stale (MajorDomo's PINGs
 * may have gone unanswered meanwhile).
 */
export function watchLiveness(bus: Bus, stallMs = STALL_MS): LoopLiveness {
  const liveness = new LoopLiveness({ stallMs });
  const watch = async () => {
    for await (const s of bus.nc.status())
      if (
        s.type === 'disconnect' ||
        s.type === 'reconnect' ||
        s.type === 'reconnecting' ||
        s.type === 'staleConnection' ||
        s.type === 'slowConsumer'
      )
        liveness.dropped();
  };
  // Not watched any more (the connection closed): no task is started before its record again.
  void watch()
    .catch((err: unknown) =>
      bus.logger.warn({ err: String(err) }, 'cannot watch the NATS connection'),
    )
    .finally(() => liveness.close());
  return liveness;
}
