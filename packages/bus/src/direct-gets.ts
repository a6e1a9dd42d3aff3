import { BaseApiClientImpl, DirectMsgImpl, JetStreamStatus } from '@nats-io/jetstream/internal';
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
}
