import type { ManagedProcess } from '@computepods/testkit';
import type { Stack } from './stack.js';

/** How long a MajorDomo's lease lasts and how often its holder renews it. */
export interface Lease {
  readonly ms: number;
  readonly renewMs: number;
}

/** A lease a standby takes over within seconds of the leader's death (3 s, renewed every 1 s). */
export const SHORT_LEASE: Lease = { ms: 3_000, renewMs: 1_000 };

/** The line a standby logs once it holds the graph, loaded from the leader's snapshot. */
export const WARM_STANDBY = /"msg":"standby: graph loaded from the snapshot/;

/**
 * The environment of MajorDomo `id`, one of several for the project (CP_MAJORDOMO_HA=1): the
 * one holding the lease leads, the others stand by. Without `lease`, the service's default.
 */
export function haEnv(id: string, lease?: Lease): Record<string, string> {
  return {
    CP_MAJORDOMO_HA: '1',
    CP_MAJORDOMO_ID: id,
    ...(lease ? { CP_LEASE_MS: String(lease.ms), CP_LEASE_RENEW_MS: String(lease.renewMs) } : {}),
  };
}

/**
 * A project served by two MajorDomos on SHORT_LEASE, leader `md-a` and warm standby `md-b`,
 * with a chef, a runner and an fswatcher. The chef starts first: md-a plans with its rules and
 * stores the graph snapshot that md-b loads and keeps current (warm-standby.ts); md-b is
 * started once that snapshot is stored, and counts as started once it has loaded it.
 */
export async function startLeaderAndStandby(
  stack: Stack,
  chef: { readonly env: Record<string, string>; readonly name?: string },
): Promise<{ leader: ManagedProcess; standby: ManagedProcess }> {
  await stack.start('chef', chef.env, chef.name);
  const leader = await stack.start('majordomo', haEnv('md-a', SHORT_LEASE), 'md-a');
  await leader.waitForOutput(/"msg":"graph snapshot stored"/);
  const [standby] = await Promise.all([
    stack.start('majordomo', haEnv('md-b', SHORT_LEASE), 'md-b', WARM_STANDBY),
    stack.start('runner'),
    stack.start('fswatcher'),
  ]);
  return { leader, standby };
}
