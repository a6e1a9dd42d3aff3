import {
  BaseApiClientImpl,
  DirectMsgImpl,
  JetStreamApiCodes,
  JetStreamApiError,
  type JetStreamManager,
  JetStreamStatus,
  jserrors,
} from '@nats-io/jetstream/internal';
import { Bucket, type KV, type KvEntry } from '@nats-io/kv';
import { Empty, errors } from '@nats-io/transport-node';
import { isNoResponders, type MuxedReplies } from './muxed-replies.js';

/**
 * A KV key's last value by a JetStream direct get, answered on the connection's MuxedReplies
 * (no timer, deferred or Error objects per read, see muxed-replies.ts): what nats.js's
 * `Bucket.get` asks and returns for a bucket that allows direct gets, the same subject
 * (`<api prefix>.DIRECT.GET.<stream>.<key's subject>`, so the credentials' permissions apply
 * per key), entry and failures: none for a key never written (404), nats.js's
 * `JetStreamStatus` error for any other status, `RequestError` caused by `NoResponders` when
 * nobody answers, `TimeoutError` after the manager's timeout.
 *
 * A chef reads two keys a compile (its build's result and task records): nats.js's request
 * made four Errors for each (`pnpm bench cbuild`'s profiles).
 */
export class DirectGets {
  constructor(readonly replies: MuxedReplies) {}

  /**
   * The key's entry as `kv.get` gives it (null: none), or undefined when this bucket is not one
   * read this way (not nats.js's Bucket, or no direct gets allowed): ask `kv.get` then.
   */
  last(kv: KV, key: string): Promise<KvEntry | null> | undefined {
    if (!(kv instanceof Bucket) || !kv.direct) return undefined;
    const api = kv.jsm.direct;
    if (!(api instanceof BaseApiClientImpl)) return undefined;
    const ek = kv.encodeKey(key);
    kv.validateKey(ek);
    const subject = `${api.prefix}.DIRECT.GET.${kv.bucketName()}.${kv.subjectForKey(ek)}`;
    return this.replies.request(subject, Empty, api.timeout).then((m) => {
      if (isNoResponders(m)) {
        const none = new errors.NoRespondersError(subject);
        throw new errors.RequestError(none.message, { cause: none });
      }
      if (m.headers?.code !== 0) {
        const status = new JetStreamStatus(m);
        if (status.isMessageNotFound()) return null;
        throw status.toError();
      }
      const entry = kv.smToEntry(new DirectMsgImpl(m));
      return entry.rawKey === ek ? entry : null;
    });
  }

  /**
   * The last message on `subject` in `stream` by a message get (`STREAM.MSG.GET`, which only the
   * stream's leader answers: KvSpec.leaderReads), as nats.js's `jsm.streams.getMessage` asks it
   * and fails (null for none; `JetStreamNotEnabled` when nobody answers; the server's API error
   * otherwise), answered on the shared reply subscription: on a cluster every KV get is one
   * (pnpm bench kvreads: nats.js's request cost 1.6x a direct get's client CPU). Undefined when
   * `jsm` is not nats.js's own: ask it then.
   */
  lastBySubject(
    jsm: JetStreamManager,
    stream: string,
    subject: string,
  ): Promise<StoredLast | null> | undefined {
    const api = jsm.streams;
    if (!(api instanceof BaseApiClientImpl)) return undefined;
    const request = `${api.prefix}.STREAM.MSG.GET.${stream}`;
    const body = JSON.stringify({ last_by_subj: subject });
    return this.replies.request(request, body, api.timeout).then((m) => {
      if (isNoResponders(m)) {
        const none = new errors.NoRespondersError(request);
        throw new jserrors.JetStreamNotEnabled('jetstream is not enabled', {
          cause: new errors.RequestError(none.message, { cause: none }),
        });
      }
      let answer: StoredAnswer;
      try {
        answer = api.parseJsResponse(m) as StoredAnswer;
      } catch (err) {
        if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.NoMessageFound)
          return null;
        throw err;
      }
      const { seq, data, hdrs } = answer.message;
      return {
        seq,
        data: data ? Buffer.from(data, 'base64') : new Uint8Array(0),
        operation: hdrs
          ? KV_OPERATION.exec(Buffer.from(hdrs, 'base64').toString())?.[1]
          : undefined,
      };
    });
  }
}

/** A stream message as a message get answers it: its data and headers in base64. */
interface StoredAnswer {
  readonly message: { readonly seq: number; readonly data?: string; readonly hdrs?: string };
}

/** A stream's last message on a subject (lastBySubject): its sequence, data and KV operation. */
export interface StoredLast {
  readonly seq: number;
  readonly data: Uint8Array;
  /** The `KV-Operation` header (DEL, PURGE), if any: a KV put has none. */
  readonly operation: string | undefined;
}

/** The KV-Operation header line of a NATS header block (`NATS/1.0\r\nKV-Operation: DEL\r\n`). */
const KV_OPERATION = /^KV-Operation:\s*(\S+)/im;
