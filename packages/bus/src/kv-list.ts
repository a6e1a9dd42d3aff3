import { setTimeout as sleep } from 'node:timers/promises';
import { CpError, isRetryable } from '@computepods/protocol';
import type { JetStreamManager, MsgRequest, StoredMsg } from '@nats-io/jetstream';

/** A key's latest stored message: its value's bytes, or a delete (DEL, PURGE). */
export interface LatestMessage {
  readonly revision: number;
  readonly operation: 'PUT' | 'DEL' | 'PURGE';
  readonly data: Uint8Array;
}

/** Gets in flight at once: one walker per slice of the stream's sequences. */
const WALKERS = 64;

/**
 * Tries of one get. A get is a read, so one that timed out (a server too loaded to answer in
 * nats.js's 5 s: MajorDomo restoring 100k records at load ~20 failed to start so, "cannot
 * start: timeout") or met a stream between leaders is asked again.
 */
const GET_TRIES = 4;

/** Rounds that read what was written while the listing ran (see latestMessagesAfter). */
const TAIL_ROUNDS = 3;

/**
 * A stored message's bytes, decoded by Buffer from the base64 the JSON API answered with, not by
 * nats.js's `data` (atob, then a loop per byte): Node 20's atob is slow, ~30 ms of a MajorDomo
 * restart at 100k artefacts for its rules bucket's ~1 MB of declarations (CPU profile, pnpm
 * bench scale), and a full restore lists every record. Where nats.js holds it otherwise (its
 * StoredMsgImpl keeps the answer as `smr`), its own `data`.
 */
export function dataOf(m: StoredMsg): Uint8Array {
  const b64 = (m as unknown as { smr?: { message?: { data?: unknown } } }).smr?.message?.data;
  return typeof b64 === 'string' && b64 !== '' ? Buffer.from(b64, 'base64') : m.data;
}

/** A bucket could not be listed: which, where the pass was, and why. */
export class KvListingError extends CpError {
  constructor(bucket: string, seq: number, tries: number, options: ErrorOptions) {
    super(
      'CP_UNAVAILABLE',
      `could not list KV bucket ${bucket}: the get at sequence ${seq} failed ${tries === 1 ? 'once' : `${tries} times`} (${String((options.cause as Error | undefined)?.message ?? options.cause)}); is nats-server overloaded or its stream without a leader? Try again`,
      { ...options, retryable: true },
    );
  }
}

async function getRetried(
  jsm: JetStreamManager,
  bucket: string,
  query: MsgRequest & { seq: number },
): Promise<StoredMsg | null> {
  for (let tries = 1; ; tries++) {
    try {
      return await jsm.streams.getMessage(`KV_${bucket}`, query);
    } catch (err) {
      if (tries >= GET_TRIES || !isRetryable(err))
        throw new KvListingError(bucket, query.seq, tries, { cause: err });
      await sleep(100 * 2 ** (tries - 1));
    }
  }
}

/**
 * The latest message of every key of a KV bucket (raw keys, as stored), read with JetStream's
 * message get (`$JS.API.STREAM.MSG.GET`, by sequence with `next_by_subj`, which skips the gaps
 * that superseded and deleted values leave) by walkers over slices of the stream's sequences.
 *
 * Why not a KV watch (an ordered consumer): every message a consumer delivers carries a reply
 * subject, and a user with response permissions (`resp`: every ComputePods role, so that it may
 * answer requests without a general publish right) has each one recorded by nats-server for the
 * permission's time to live (2 minutes when the JWT says 0); past 4,096 records, nats-server 2.9
 * walks all of them on every delivery (pruneReplyPerms). A listing of n values then costs O(n²):
 * 30,000 values took 22 s with `resp` and 0.45 s without, on the same server; 99,141 took
 * ~250 s. A get's reply carries no reply subject, so nothing is recorded. The gets are answered
 * by the stream's leader (a direct get may be answered by a replica that lags).
 *
 * The walkers stop at the stream's last sequence when the pass began: going on to the end as
 * found never ended beside a busy writer. A key rewritten meanwhile may have lost the message
 * they were to read (its newer one past that end), so up to TAIL_ROUNDS rounds then read what
 * was written while the pass ran. A key rewritten again during the last round may still be left
 * out; a watch started after sees it. The highest revision of a key wins, whatever the order
 * walkers read them in (buckets that keep history).
 */
export async function latestMessages(
  jsm: JetStreamManager,
  bucket: string,
): Promise<Map<string, LatestMessage>> {
  return (await latestMessagesAfter(jsm, bucket, 0)).latest;
}

/**
 * latestMessages of the keys written after revision `after` only (the changes since a snapshot
 * that reflects the bucket up to `after`): each such key's latest message, deletes included, and
 * the stream's last sequence the result reflects (when the pass began, or when its last round
 * of what was written meanwhile began) and when the stream was made (a bucket made again starts
 * its revisions again).
 */
export async function latestMessagesAfter(
  jsm: JetStreamManager,
  bucket: string,
  after: number,
): Promise<{ latest: Map<string, LatestMessage>; last: number; created: string }> {
  const stream = `KV_${bucket}`;
  const prefix = `$KV.${bucket}.`;
  const filter = `${prefix}>`;
  const { state, created } = await jsm.streams.info(stream);
  const out = new Map<string, LatestMessage>();
  const first = Math.max(state.first_seq, after + 1);
  const last = state.last_seq;
  if (state.messages === 0 || first > last) return { latest: out, last, created };
  const span = Math.max(1, last - first + 1);
  const walkers = Math.min(WALKERS, span);
  const slice = Math.ceil(span / walkers);
  const keep = (m: StoredMsg) => {
    const key = m.subject.slice(prefix.length);
    const had = out.get(key);
    if (had && had.revision > m.seq) return;
    const op = m.header.get('KV-Operation');
    out.set(key, {
      revision: m.seq,
      operation: op === 'DEL' || op === 'PURGE' ? op : 'PUT',
      data: dataOf(m),
    });
  };
  await Promise.all(
    Array.from({ length: walkers }, async (_, w) => {
      const end = Math.min(last, first + (w + 1) * slice - 1);
      for (let seq = first + w * slice; ; ) {
        // nats-server (2.9 on) takes next_by_subj with a seq here too; nats.js types it only for
        // direct gets.
        const query = { seq, next_by_subj: filter } as MsgRequest & { seq: number };
        const m = await getRetried(jsm, bucket, query);
        if (!m || m.seq > end) return;
        keep(m);
        seq = m.seq + 1;
      }
    }),
  );
  // A key rewritten while the pass ran may have lost the message the pass was to read (a bucket
  // keeping one value per key removes the old one) and have its new one past `last`: a chef's
  // declaration, put again at every heartbeat, went missing from a listing of a bucket whose
  // chefs were all alive (fresh-clone CI, chef-outage.test). So what was written meanwhile is
  // read too, in a few rounds at most (a busy writer must not keep the listing from ending).
  let end = last;
  for (let round = 0; round < TAIL_ROUNDS; round++) {
    const now = (await jsm.streams.info(stream)).state.last_seq;
    if (now <= end) break;
    for (let seq = end + 1; ; ) {
      const query = { seq, next_by_subj: filter } as MsgRequest & { seq: number };
      const m = await getRetried(jsm, bucket, query);
      if (!m || m.seq > now) break;
      keep(m);
      seq = m.seq + 1;
    }
    end = now;
  }
  return { latest: out, last: end, created };
}
