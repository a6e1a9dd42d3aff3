import { CpError } from '@computepods/protocol';
import type { JetStreamManager, StoredMsg } from '@nats-io/jetstream';
import { readStored } from './stored-messages.js';

/** A key's latest stored message: its value's bytes, or a delete (DEL, PURGE). */
export interface LatestMessage {
  readonly revision: number;
  readonly operation: 'PUT' | 'DEL' | 'PURGE';
  readonly data: Uint8Array;
}

/** Gets in flight at once: one walker per slice of the stream's sequences. */
const WALKERS = 64;

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

/**
 * The latest message of every key of a KV bucket (raw keys, as stored), read with message gets
 * by walkers over slices of the stream's sequences (readStored, stored-messages.ts, says why
 * not a KV watch).
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
  const out = new Map<string, LatestMessage>();
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
  const failed = (seq: number, tries: number, cause: unknown) =>
    new KvListingError(bucket, seq, tries, { cause });
  const pass = await readStored(jsm, stream, filter, keep, {
    from: after + 1,
    walkers: WALKERS,
    failed,
  });
  // A key rewritten while the pass ran may have lost the message the pass was to read (a bucket
  // keeping one value per key removes the old one) and have its new one past `last`: a chef's
  // declaration, put again at every heartbeat, went missing from a listing of a bucket whose
  // chefs were all alive (fresh-clone CI, chef-outage.test). So what was written meanwhile is
  // read too, in a few rounds at most (a busy writer must not keep the listing from ending).
  let end = pass.last;
  for (let round = 0; round < TAIL_ROUNDS; round++) {
    const tail = await readStored(jsm, stream, filter, keep, { from: end + 1, walkers: 1, failed });
    if (tail.last <= end) break;
    end = tail.last;
  }
  return { latest: out, last: end, created: pass.created };
}
