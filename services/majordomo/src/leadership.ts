import type { Bus } from '@computepods/bus';
import type { MajorDomoConfig } from './config.js';
import { DispatchFence } from './fence.js';
import { LeaderLease, type LeaderRecord } from './lease.js';
import type { Leadership } from './majordomo.js';
import { startStandbyHttp } from './standby-http.js';
import { WarmStandby } from './warm-standby.js';

/** Exit code of a leader that lost its lease: its supervisor restarts it, as a standby. */
export const EXIT_STEPPED_DOWN = 3;

/**
 * Standby mode (CP_MAJORDOMO_HA=1; off, returns undefined at once and MajorDomo runs alone).
 * Stands by until this process holds the project's lease, answering REST with 503 naming the
 * leader meanwhile; then stores its fence (fence.ts) and returns, and the caller starts
 * MajorDomo as a restart does: rules, artefact records and traces from KV, the durable
 * consumers where the last leader left them (what it had not acknowledged comes again).
 * `onLost` runs once the lease is seen taken: the process logs why, stops and exits
 * EXIT_STEPPED_DOWN.
 */
export async function standBy(
  bus: Bus,
  cfg: MajorDomoConfig,
  token: string,
  /** Stops the wait (the process is stopped while standing by): standBy then throws. */
  signal: AbortSignal = new AbortController().signal,
): Promise<
  | {
      leadership: Leadership;
      /** The graph kept while standing by, when another MajorDomo led meanwhile. */
      warm?: WarmStandby;
      onLost: (stop: () => Promise<void>) => void;
    }
  | undefined
> {
  const lc = cfg.lease;
  if (!lc.enabled) return undefined;
  const lease = await LeaderLease.open(bus, lc);
  let leader: LeaderRecord | undefined;
  const standby = await startStandbyHttp(bus, cfg, token, () => leader);
  bus.logger.info(
    { id: lc.id, standbyUrl: standby.url, leaseMs: lc.leaseMs, renewMs: lc.renewMs },
    'majordomo standing by',
  );
  // Started once another MajorDomo is seen leading (not by one that takes a free lease at once).
  let warm: Promise<WarmStandby | undefined> | undefined;
  const started = await lease
    .acquire(signal, (l) => {
      leader = l;
      warm ??= WarmStandby.start(bus, cfg).catch((err: Error) => {
        bus.logger.warn(
          { err: err.message },
          'standby: graph not followed; a takeover restores cold',
        );
        return undefined;
      });
      bus.logger.info(
        { leader: l.holder, epoch: l.epoch, url: l.url },
        `standby: ${l.holder} leads (epoch ${l.epoch}); taking over if it stops renewing for ${lc.leaseMs} ms`,
      );
    })
    .finally(() => standby.close());
  const fence = new DispatchFence(bus, lease);
  await fence.raise();
  bus.logger.info({ id: lc.id, epoch: started.epoch }, 'leader: restoring from KV');
  return {
    leadership: { lease, fence },
    warm: await warm,
    onLost: (stop) =>
      lease.onLost((by) => {
        bus.logger.error(
          { id: lc.id, epoch: started.epoch, leader: by?.holder, leaderEpoch: by?.epoch },
          `stepping down: lost the lease to ${by ? `${by.holder} (epoch ${by.epoch})` : 'nobody (deleted)'}; this MajorDomo dispatches nothing more and exits`,
        );
        const timer = setTimeout(() => process.exit(EXIT_STEPPED_DOWN), 5_000);
        timer.unref();
        stop().then(
          () => process.exit(EXIT_STEPPED_DOWN),
          () => process.exit(EXIT_STEPPED_DOWN),
        );
      }),
  };
}
