import { type Bus, decode, type Logger, type TypedKv } from '@computepods/bus';
import type { TaskRecord } from '@computepods/protocol';

/** Stream sequences looked at in one release; beyond, the rest waits for the ack wait. */
const MAX_SPAN = 10_000;

/**
 * Hands out again at once the task messages a pilot that ended abnormally (crash, scancel, node
 * lost) held, instead of after the consumer's ack wait: a pilot worker holds a task's message
 * until the task ends (pilot-worker.ts), and the pilots share one consumer whose
 * max_ack_pending is one per lane, so each held message of a dead pilot kept a lane of the
 * queue empty for the ack wait (30 s by default, and then only if nothing renewed it).
 *
 * Which pending messages were the dead pilot's is read from the messages themselves: each
 * pending message of the queue is looked up in the stream and its task's record in KV. A task
 * the dead pilot recorded (failed by now, see pilot-takeover.ts) or that nobody recorded (the
 * pilot pulled it and died before recording it) is NAKed on its ack subject; one recorded by
 * another runner or a live pilot is left alone. NAKing a task a live pilot pulled a moment ago
 * and is recording is harmless: the record's create decides who runs it, and the other delivery
 * is acknowledged without running anything. Returns the NAKed stream sequences.
 */
export async function releaseHeldByPilot(options: {
  readonly bus: Bus;
  readonly kv: TypedKv<typeof TaskRecord>;
  readonly stream: string;
  readonly durable: string;
  /** The queue's task subject (the consumer's filter). */
  readonly subject: string;
  /** The ended pilot's runner id (pilot-takeover.ts's pilotRunnerId). */
  readonly runner: string;
  readonly log: Logger;
}): Promise<number[]> {
  const { bus, kv, stream, durable, subject, runner, log } = options;
  const info = await bus.jsm.consumers.info(stream, durable);
  if (info.num_ack_pending === 0) return [];
  const from = info.ack_floor.stream_seq + 1;
  const to = Math.min(info.delivered.stream_seq, from + MAX_SPAN - 1);
  const released: number[] = [];
  for (let seq = from; seq <= to; seq++) {
    // Acknowledged ones are gone from the work queue; other queues' share the stream.
    const m = await bus.jsm.streams.getMessage(stream, { seq }).catch(() => undefined);
    if (!m || m.subject !== subject) continue;
    let taskId: string;
    try {
      taskId = decode(m.data, ['task.submitted'], bus.project).body.taskId;
    } catch {
      continue; // not a task: the consumers dead-letter it themselves
    }
    const rec = (await kv.get(taskId))?.value;
    if (rec && rec.runner !== runner) continue;
    // The ack subject of a delivery: the server takes a NAK for any message still pending on
    // the durable, with a consumer sequence above its ack floor (see reclaim.ts).
    const now = Date.now() * 1_000_000;
    bus.nc.publish(
      `$JS.ACK.${stream}.${durable}.1.${seq}.${info.delivered.consumer_seq}.${now}.0`,
      '-NAK',
    );
    released.push(seq);
  }
  await bus.nc.flush();
  if (released.length)
    log.info(
      { runner, released: released.length },
      'task messages held by an ended pilot are delivered again now',
    );
  if (info.delivered.stream_seq > to)
    log.warn(
      { runner, beyond: to },
      'too many stream messages since the ack floor to look at them all; the rest are delivered again after the ack wait',
    );
  return released;
}
