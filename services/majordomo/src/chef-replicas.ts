import type { Bus } from '@computepods/bus';
import { envInt, streams } from '@computepods/protocol';
import { releasePending } from './release-pending.js';
import { MIN_DEAD_S, watchReplicas } from './replica-census.js';

/**
 * How long one chef process may go without answering before the build requests it held are
 * handed to its peers (CP_CHEF_REPLICA_DEAD_S, default 10 s).
 */
export function chefReplicaDeadMs(env: NodeJS.ProcessEnv = process.env): number {
  return (
    envInt(env, 'CP_CHEF_REPLICA_DEAD_S', 10, { min: MIN_DEAD_S, max: 3600, unit: 'seconds' }) *
    1000
  );
}

/**
 * Chef replicas (several processes of one chef name share the durable chef-<name>). Each answers
 * `$SRV.PING.chef` with its name in its metadata (chef.ts); one that stops answering for the
 * grace (at least MIN_DEAD_S) has its pulled, unacknowledged requests handed out again at once (release-pending.ts),
 * so a live replica builds them in seconds instead of after the durable's ack wait. A chef name
 * with no replica left is retired by liveness.ts as before.
 */
export function watchChefReplicas(bus: Bus, graceMs = chefReplicaDeadMs()): () => void {
  return watchReplicas(bus, {
    service: 'chef',
    graceMs,
    onGone: async (r) => {
      const chef = r.metadata.chef;
      if (!chef) return;
      const released = await releasePending(bus, streams.builds(bus.project), `chef-${chef}`).catch(
        (err: Error) => {
          bus.logger.warn(
            { chef, err: err.message },
            'could not release its pulled build requests',
          );
          return 0;
        },
      );
      bus.logger.warn(
        { chef, replica: r.id, lastHeard: r.heardAt.toISOString(), released },
        'chef replica stopped answering; the requests it held are handed out again',
      );
    },
  });
}
