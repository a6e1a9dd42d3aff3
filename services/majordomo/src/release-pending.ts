import { type Bus, redeliverPending } from '@computepods/bus';

/**
 * Hands out again at once what a replica that stopped answering had pulled from `durable` and
 * not acknowledged (bus's redeliverPending), instead of after the ack wait. Live replicas'
 * pending messages come again too: a chef takes a second delivery of a request it is building as
 * the same build, and a runner's task record is created once. Returns how many were pending.
 */
export async function releasePending(bus: Bus, stream: string, durable: string): Promise<number> {
  const r = await redeliverPending(bus, stream, durable);
  if (r.rest > 0)
    bus.logger.warn(
      { stream, durable, beyond: r.toSeq, rest: r.rest },
      'too many stream messages since the ack floor to release them all; the rest are delivered again after the ack wait',
    );
  return r.pending;
}
