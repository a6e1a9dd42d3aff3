import { setTimeout as sleep } from 'node:timers/promises';
import { isRetryable } from '@computepods/protocol';
import type { JetStreamManager, MsgRequest, StoredMsg } from '@nats-io/jetstream';

/** Walkers reading slices of the stream at once (each get is one round trip). */
const WALKERS = 16;

/**
 * Tries of one get. A get is a read, so one that timed out (a server too loaded to answer in
 * nats.js's 5 s: MajorDomo restoring 100k records at load ~20 failed to start so, "cannot
 * start: timeout") or met a stream between leaders is asked again.
 */
const GET_TRIES = 4;

export interface ReadStoredOptions {
  /** The first sequence to read (default: the stream's first). */
  readonly from?: number;
  /** Gets in flight at once, each walker over its own slice of the sequences (default 16). */
  readonly walkers?: number;
  /** What a get that failed for good throws (default: its own error). */
  readonly failed?: (seq: number, tries: number, cause: unknown) => Error;
}

/** What readStored read, and the stream it read. */
export interface ReadStored {
  readonly read: number;
  /** The stream's last sequence when the walk began: the walk's end. */
  readonly last: number;
  /** When the stream was made (a stream made again starts its sequences again). */
  readonly created: string;
}

/**
 * Hands `take` every message a stream keeps on `subject` (a filter, wildcards allowed) from
 * `from` up to its last one when the walk began (what comes later, a subscriber hears). Read
 * with JetStream's message get (`$JS.API.STREAM.MSG.GET`, `next_by_subj` from a sequence, which
 * skips the gaps other subjects and removed messages leave), one round trip a message, by
 * `walkers` walkers over slices of the sequences at once. Each slice is read oldest first;
 * slices interleave, so `take` must not depend on the order. A get that fails retryably is asked
 * again (GET_TRIES in all). The gets are answered by the stream's leader (a direct get may be
 * answered by a replica that lags).
 *
 * Why not a consumer (an ordered one, a KV watch): every message a consumer delivers carries a
 * reply subject, and a user with response permissions (`resp`: every ComputePods role, so that
 * it may answer requests without a general publish right) has each one recorded by nats-server
 * for the permission's time to live (2 minutes when the JWT says 0); past 4,096 records,
 * nats-server 2.9 walks all of them on every delivery (pruneReplyPerms). A read of n messages
 * then costs O(n²): 30,000 KV values took 22 s with `resp` and 0.45 s without, on the same
 * server; 99,141 took ~250 s. A get's reply carries no reply subject, so nothing is recorded.
 */
export async function readStored(
  jsm: JetStreamManager,
  stream: string,
  subject: string,
  take: (m: StoredMsg) => void,
  options: ReadStoredOptions = {},
): Promise<ReadStored> {
  const { state, created } = await jsm.streams.info(stream);
  const first = Math.max(state.first_seq, options.from ?? 0);
  const last = state.last_seq;
  if (state.messages === 0 || first > last) return { read: 0, last, created };
  const span = last - first + 1;
  const n = Math.max(1, Math.min(options.walkers ?? WALKERS, span));
  const slice = Math.ceil(span / n);
  let read = 0;
  await Promise.all(
    Array.from({ length: n }, async (_, w) => {
      const end = Math.min(last, first + (w + 1) * slice - 1);
      for (let seq = first + w * slice; seq <= end; ) {
        const m = await getRetried(jsm, stream, subject, seq, options.failed);
        if (!m || m.seq > end) return;
        seq = m.seq + 1;
        read++;
        take(m);
      }
    }),
  );
  return { read, last, created };
}

/** The first message on `subject` at or after `seq`, or null; retried as GET_TRIES says. */
async function getRetried(
  jsm: JetStreamManager,
  stream: string,
  subject: string,
  seq: number,
  failed: ReadStoredOptions['failed'],
): Promise<StoredMsg | null> {
  // nats-server (2.9 on) takes next_by_subj with a seq; nats.js types it for direct gets only.
  const query = { seq, next_by_subj: subject } as MsgRequest & { seq: number };
  for (let tries = 1; ; tries++) {
    try {
      return await jsm.streams.getMessage(stream, query);
    } catch (err) {
      if (tries >= GET_TRIES || !isRetryable(err)) throw failed ? failed(seq, tries, err) : err;
      await sleep(100 * 2 ** (tries - 1));
    }
  }
}
