import type { JetStreamManager, MsgRequest } from '@nats-io/jetstream';

/** One stored message: its stream sequence and bytes. */
export interface StoredMessage {
  readonly seq: number;
  readonly data: Uint8Array;
}

/** Walkers reading slices of the stream at once (each get is one round trip). */
const WALKERS = 16;

/**
 * Hands `take` every message a stream keeps on `subject`, up to its last one when the walk began
 * (what comes later, a subscriber hears); resolves with how many. Read with JetStream's message
 * get (`$JS.API.STREAM.MSG.GET`, `next_by_subj` from a sequence), one round trip a message, by
 * `walkers` walkers over slices of the stream's sequences at once: for subjects with few
 * messages in a busy stream (the build cancels among the events). Each slice is read oldest
 * first; slices interleave, so `take` must not depend on the order. A get's reply carries no
 * reply subject, so nothing is recorded for the `resp` permission (kv-list.ts says why that
 * matters).
 */
export async function readStored(
  jsm: JetStreamManager,
  stream: string,
  subject: string,
  take: (m: StoredMessage) => void,
  walkers = WALKERS,
): Promise<number> {
  const { state } = await jsm.streams.info(stream);
  const first = state.first_seq;
  const last = state.last_seq;
  if (state.messages === 0 || first > last) return 0;
  const span = last - first + 1;
  const n = Math.max(1, Math.min(walkers, span));
  const slice = Math.ceil(span / n);
  let read = 0;
  await Promise.all(
    Array.from({ length: n }, async (_, w) => {
      const end = Math.min(last, first + (w + 1) * slice - 1);
      for (let seq = first + w * slice; seq <= end; ) {
        // nats-server (2.9 on) takes next_by_subj with a seq; nats.js types it for direct gets only.
        const query = { seq, next_by_subj: subject } as MsgRequest & { seq: number };
        const m = await jsm.streams.getMessage(stream, query);
        if (!m || m.seq > end) return;
        seq = m.seq + 1;
        read++;
        take({ seq: m.seq, data: m.data });
      }
    }),
  );
  return read;
}
