import type { Bus, Logger } from '@computepods/bus';

/** Stream sequences NAKed at most in one reclaim; beyond, the rest waits for the ack wait. */
const MAX_RECLAIM_SPAN = 100_000;

/**
 * Makes the task messages the queue's runners pulled and never acknowledged deliverable again
 * at once, instead of after the consumer's ack wait. A runner killed between pulling a task
 * and recording it (prefetched, or mid-admission) leaves its message pending on the durable:
 * JetStream would hand it out again only when the ack wait (30 s) ran out.
 *
 * Called once at start, before this runner pulls anything, so every pending message is another
 * process's: a dead one's (the runner this one replaces) or, with several runners on a queue, a
 * live one's about to record it. Both are safe to hand out again: a task's first record is a
 * KV create, so whoever creates it runs it and every other delivery is acknowledged without
 * running anything; a task whose record exists (ended, or adopted by this runner) is not run
 * again.
 *
 * A NAK is sent on the message's ack subject, which any client permitted to ack on this durable
 * may publish to (the runner role may): `$JS.ACK.<stream>.<durable>.<deliveries>.<stream seq>.
 * <consumer seq>.<time>.<pending>`. The server takes it for any message still pending on the
 * durable, whichever connection it went to, and ignores it for any other sequence; so every
 * stream sequence between the ack floor and the last delivered one is NAKed, with the last
 * delivered consumer sequence (a NAK is honoured for a consumer sequence above the ack floor).
 * Returns how many messages were pending.
 */
export async function reclaimPulled(
  bus: Bus,
  options: { stream: string; durable: string; log: Logger },
): Promise<number> {
  const { stream, durable, log } = options;
  const info = await bus.jsm.consumers.info(stream, durable).catch(() => undefined);
  if (!info || info.num_ack_pending === 0) return 0;
  const from = info.ack_floor.stream_seq + 1;
  const to = Math.min(info.delivered.stream_seq, from + MAX_RECLAIM_SPAN - 1);
  const dseq = info.delivered.consumer_seq;
  const now = Date.now() * 1_000_000;
  for (let sseq = from; sseq <= to; sseq++)
    bus.nc.publish(`$JS.ACK.${stream}.${durable}.1.${sseq}.${dseq}.${now}.0`, '-NAK');
  await bus.nc.flush();
  const rest = info.delivered.stream_seq - to;
  log.info(
    { pending: info.num_ack_pending, fromSeq: from, toSeq: to },
    'task messages pulled and never acknowledged (a runner killed before recording them) are delivered again now',
  );
  if (rest > 0)
    log.warn(
      { beyond: to, rest },
      'too many stream messages since the ack floor to reclaim them all; the rest are delivered again after the ack wait',
    );
  return info.num_ack_pending;
}
