import { type Bus, type Logger, redeliverPending } from '@computepods/bus';

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
 * again. The NAKs themselves: bus's redeliverPending. Returns how many messages were pending.
 */
export async function reclaimPulled(
  bus: Bus,
  options: { stream: string; durable: string; log: Logger },
): Promise<number> {
  const { stream, durable, log } = options;
  const r = await redeliverPending(bus, stream, durable);
  if (r.pending === 0) return 0;
  log.info(
    { pending: r.pending, fromSeq: r.fromSeq, toSeq: r.toSeq },
    'task messages pulled and never acknowledged (a runner killed before recording them) are delivered again now',
  );
  if (r.rest > 0)
    log.warn(
      { beyond: r.toSeq, rest: r.rest },
      'too many stream messages since the ack floor to reclaim them all; the rest are delivered again after the ack wait',
    );
  return r.pending;
}
