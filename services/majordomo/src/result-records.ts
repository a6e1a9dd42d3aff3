import type { ConsumerSpec } from '@computepods/bus';
import { streams, subjects } from '@computepods/protocol';

/**
 * MajorDomo's durable on the builds bucket's own stream: every result a chef stores, heard from
 * its put. A chef asked with resultFromRecord (every request MajorDomo sends) publishes no
 * build.result, so a compile costs one stored message and one round trip fewer than when
 * MajorDomo read the results stream (pnpm bench cbuild, #15). The durable keeps its place, as
 * `majordomo-results` did: a result stored while MajorDomo is down, or before its writes are
 * stored, comes again. Made before the restore's first request (MajorDomo.start), starting
 * after the bucket's last write: the results of requests it sends from then on, not every
 * record the bucket keeps. Results published as build.result (chefs of an earlier version,
 * requests sent by an earlier MajorDomo) still come through `majordomo-results`; an older chef
 * stores and publishes each, and the copy heard second finds its build no longer wanted.
 */
export function resultRecordsSpec(
  project: string,
  /** Results handed over at once (the consumer's concurrency). */
  inFlight: number,
): ConsumerSpec & { filterSubject: string } {
  return {
    stream: streams.buildRecords(project),
    durable: 'majordomo-builds',
    filterSubject: subjects.buildRecords(project),
    deliverNew: true,
    maxDeliver: 5,
    ackWaitMs: 30_000,
    maxAckPending: inFlight * 4,
  };
}
