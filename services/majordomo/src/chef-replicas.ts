import type { Bus, TypedKv } from '@computepods/bus';
import { type RulesDeclared, streams } from '@computepods/protocol';
import { releasePending } from './release-pending.js';
import { watchReplicas } from './replica-census.js';

/**
 * Chef replicas (several processes of one chef name share the durable chef-<name>). Each answers
 * `$SRV.PING.chef` with its name in its metadata (chef.ts); one that stops answering for the
 * grace (CP_CHEF_REPLICA_DEAD_S) has its pulled, unacknowledged requests handed out again at
 * once (release-pending.ts), so a live replica builds them in seconds instead of after the
 * durable's ack wait. A chef name with no replica left is retired by liveness.ts as before.
 *
 * A replica is also followed from the declaration it writes (its $SRV id is in it): one killed
 * before the first PING reached it (it may have pulled a request already) is then reported gone
 * as well. At a start, the declaration kept in KV counts: if its writer is dead, what it held is
 * handed out once after the grace.
 */
export async function watchChefReplicas(
  bus: Bus,
  rulesKv: Pick<TypedKv<typeof RulesDeclared>, 'watchValid'>,
  graceMs: number,
): Promise<() => void> {
  const census = watchReplicas(bus, {
    service: 'chef',
    graceMs,
    onGone: async (r) => {
      const chef = r.metadata.chef;
      if (!chef) {
        // Never silent: without a chef name there is no durable to release from.
        bus.logger.warn(
          { replica: r.id, lastHeard: r.heardAt.toISOString() },
          'chef replica stopped answering; it never named its chef, so nothing is handed out again',
        );
        return;
      }
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
  const stopWatch = await rulesKv.watchValid((chef, decl) => {
    if (decl?.srv && decl.srv.name === 'chef' && decl.chef === chef)
      census.note({ id: decl.srv.id, metadata: { chef }, heardAt: new Date() });
  });
  return () => {
    stopWatch();
    census.stop();
  };
}
