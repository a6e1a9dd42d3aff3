import type { PubAck } from '@nats-io/jetstream';
import { JetStreamClientImpl, jserrors, PubHeaders } from '@nats-io/jetstream/internal';
import { errors, headers, type Msg, type MsgHdrs } from '@nats-io/transport-node';
import { isNoResponders, type MuxedReplies } from './muxed-replies.js';

export interface AckedPublishOptions {
  /** Nats-Msg-Id: a repeat within the stream's duplicate window is not stored again. */
  readonly msgID?: string;
  /** Nats-Expected-Last-Subject-Sequence: stored only if the subject's last is this (0: none). */
  readonly expectLastSubjectSequence?: number;
  /** Default 5 s, as nats.js's. */
  readonly timeoutMs?: number;
  /** More headers (a KV delete's KV-Operation); the options above are set on them. */
  readonly headers?: MsgHdrs;
}

/**
 * JetStream publishes awaiting their ack, answered on one reply subscription per connection.
 *
 * nats.js's `js.publish` is a request each: a reply entry, a timer, a deferred and, when the
 * answer comes, an Error object it builds only to reject an already settled promise (its stack
 * trace is most of the cost). Half of the client's CPU per acknowledged write went there (55
 * against 26 µs, 6,000 KV updates, `TypedKv` against this). Here a publish is the message and
 * an entry in the connection's MuxedReplies (muxed-replies.ts).
 *
 * The answers and failures are nats.js's own, so callers and protocol's `isRetryable` read them
 * as before: the ack (or `JetStreamApiError` and kin) parsed by nats.js's `parseJsResponse`; no
 * responders: `JetStreamNotEnabled` caused by a `RequestError` caused by `NoResponders`; no
 * answer in time: `TimeoutError`; a subject the credentials may not publish on: a
 * `RequestError` caused by the server's `PermissionViolationError`; a closed connection:
 * `ClosedConnectionError`.
 */
export class AckedPublisher {
  readonly #replies: MuxedReplies;
  readonly #js: JetStreamClientImpl;

  constructor(replies: MuxedReplies, js: JetStreamClientImpl) {
    this.#replies = replies;
    this.#js = js;
  }

  /** For a client made by nats.js's `jetstream()`; undefined for any other (use that one). */
  static for(replies: MuxedReplies, js: unknown): AckedPublisher | undefined {
    return js instanceof JetStreamClientImpl ? new AckedPublisher(replies, js) : undefined;
  }

  publish(
    subject: string,
    data: Uint8Array | string,
    o: AckedPublishOptions = {},
  ): Promise<PubAck> {
    let h: MsgHdrs | undefined;
    try {
      h = o.headers;
      if (o.msgID !== undefined || o.expectLastSubjectSequence !== undefined) h ??= headers();
      if (o.msgID !== undefined) h?.set(PubHeaders.MsgIdHdr, o.msgID);
      if (o.expectLastSubjectSequence !== undefined)
        h?.set(PubHeaders.ExpectedLastSubjectSequenceHdr, String(o.expectLastSubjectSequence));
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#replies
      .request(subject, data, o.timeoutMs ?? 5_000, h)
      .then((m) => this.#ack(subject, m));
  }

  #ack(subject: string, m: Msg): PubAck {
    if (isNoResponders(m)) {
      const none = new errors.NoRespondersError(subject);
      throw new jserrors.JetStreamNotEnabled('jetstream is not enabled', {
        cause: new errors.RequestError(none.message, { cause: none }),
      });
    }
    const ack = this.#js.parseJsResponse(m) as PubAck;
    if (ack.stream === '') throw new jserrors.JetStreamError('invalid ack response');
    return { ...ack, duplicate: ack.duplicate ?? false };
  }
}
