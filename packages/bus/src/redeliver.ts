import type { Bus } from './bus.js';

/** Stream sequences NAKed at most at once; beyond, the rest waits for the ack wait. */
const MAX_SPAN = 100_000;

/** What redeliverPending found and did. */
export interface Redelivered {
  /** Messages pulled from the durable and not acknowledged when it looked. */
  readonly pending: number;
  /** The stream sequences NAKed (none: from > to). */
  readonly fromSeq: number;
  readonly toSeq: number;
  /** Delivered sequences beyond MAX_SPAN, left to the ack wait. */
  readonly rest: number;
}

/**
 * Hands out again, now, every message pulled from a durable and not yet acknowledged, instead
 * of after the consumer's ack wait: what a client that died (killed before acknowledging, or
 * stopped answering) had pulled goes to a live one. No client can tell the server whose a pending
 * message is, so those of live clients are NAKed too: a consumer sharing the durable must take
 * a second delivery of what it already holds as the same work.
 *
 * A NAK is sent on the message's ack subject, which any client permitted to ack on the durable
 * may publish to: `$JS.ACK.<stream>.<durable>.<deliveries>.<stream seq>.<consumer seq>.<time>.
 * <pending>`. The server takes it for any stream sequence still pending on the durable, whichever
 * connection it went to, and ignores it for any other; so every stream sequence from the ack
 * floor to the last delivered one is NAKed, with the last delivered consumer sequence (a NAK is
 * honoured for a consumer sequence above the ack floor).
 */
export async function redeliverPending(
  bus: Bus,
  stream: string,
  durable: string,
): Promise<Redelivered> {
  const info = await bus.jsm.consumers.info(stream, durable).catch(() => undefined);
  if (!info || info.num_ack_pending === 0) return { pending: 0, fromSeq: 1, toSeq: 0, rest: 0 };
  const from = info.ack_floor.stream_seq + 1;
  const to = Math.min(info.delivered.stream_seq, from + MAX_SPAN - 1);
  const dseq = info.delivered.consumer_seq;
  const now = Date.now() * 1_000_000;
  for (let sseq = from; sseq <= to; sseq++)
    bus.nc.publish(`$JS.ACK.${stream}.${durable}.1.${sseq}.${dseq}.${now}.0`, '-NAK');
  await bus.nc.flush();
  return {
    pending: info.num_ack_pending,
    fromSeq: from,
    toSeq: to,
    rest: info.delivered.stream_seq - to,
  };
}
