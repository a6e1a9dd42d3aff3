import type { JetStreamManager, MsgRequest } from '@nats-io/jetstream';

/** One stored message: its stream sequence and bytes. */
export interface StoredMessage {
  readonly seq: number;
  readonly data: Uint8Array;
}

/**
 * The messages a stream keeps on `subject`, oldest first, up to its last one when the walk began
 * (what comes later, a subscriber hears). Read with JetStream's message get
 * (`$JS.API.STREAM.MSG.GET`, `next_by_subj` from a sequence), one round trip a message: for
 * subjects with few messages in a busy stream (the build cancels among the events). A get's reply
 * carries no reply subject, so nothing is recorded for the `resp` permission (kv-list.ts says why
 * that matters).
 */
export async function* storedMessages(
  jsm: JetStreamManager,
  stream: string,
  subject: string,
): AsyncGenerator<StoredMessage> {
  const { state } = await jsm.streams.info(stream);
  for (let seq = state.first_seq; seq <= state.last_seq; ) {
    // nats-server (2.9 on) takes next_by_subj with a seq; nats.js types it for direct gets only.
    const query = { seq, next_by_subj: subject } as MsgRequest & { seq: number };
    const m = await jsm.streams.getMessage(stream, query);
    if (!m || m.seq > state.last_seq) return;
    seq = m.seq + 1;
    yield { seq: m.seq, data: m.data };
  }
}
