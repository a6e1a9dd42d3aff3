import { CpError, fromKvKey, kvKey } from '@computepods/protocol';
import type { JetStreamManager } from '@nats-io/jetstream';
import { Bucket, type KV, type KvEntry, type KvWatchOptions } from '@nats-io/kv';
import { Empty, headers } from '@nats-io/transport-node';
import type { z } from 'zod';
import type { AckedPublisher } from './acked-publisher.js';
import { issuesOf } from './decode.js';
import type { DirectGets } from './direct-gets.js';
import { isWrongLastSequence, MessageInvalidError } from './errors.js';
import { latestMessages, latestMessagesAfter } from './kv-list.js';
import type { Logger } from './logger.js';

export interface Versioned<T> {
  readonly value: T;
  readonly revision: number;
}

/**
 * A KV bucket whose values are JSON validated by a zod schema. Keys are arbitrary strings
 * (paths) encoded with kvKey. A stored value that no longer validates is logged and treated as
 * absent (or, for watch() with `invalid: 'ignore'`, skipped) rather than crashing the reader.
 */
/** A key followed (TypedKv.follow): its value when the follow began, and what comes after. */
export interface KeyFollower<T> {
  /** The key's value read once the updates were being heard (undefined: none, or invalid). */
  readonly read: Promise<Versioned<T> | undefined>;
  /**
   * The first value, the read's or one heard since the follow began, for which `done` holds;
   * rejects with the signal's reason on abort, or with the read's error. One at a time.
   */
  until(done: (value: T) => boolean, signal?: AbortSignal): Promise<T>;
  /** Stops hearing the key's updates; a pending until() rejects. */
  stop(): void;
}

export class TypedKv<S extends z.ZodType> {
  constructor(
    readonly kv: KV,
    readonly schema: S,
    readonly logger: Logger,
    /** Lists the bucket (entries, keys) with message gets; see latestMessages. */
    readonly jsm: JetStreamManager,
    readonly bucket: string,
    /** Writes go through it when given: the same messages, a cheaper wait for the ack. */
    readonly publisher?: AckedPublisher,
    /** get() asks the stream's leader, never a replica that may lag (KvSpec.leaderReads). */
    readonly leaderReads = false,
    /** Direct gets go through it when given: the same reads, no Errors made per read. */
    readonly direct?: DirectGets,
  ) {}

  /**
   * The same bucket read and written with another schema: a looser one for values its caller
   * validated already (a record checked once for its KV write and its message), or to read
   * values as they are.
   */
  withSchema<T extends z.ZodType>(schema: T): TypedKv<T> {
    return new TypedKv(
      this.kv,
      schema,
      this.logger,
      this.jsm,
      this.bucket,
      this.publisher,
      this.leaderReads,
      this.direct,
    );
  }

  #encode(value: z.input<S>): string {
    const parsed = this.schema.safeParse(value);
    if (!parsed.success)
      throw new MessageInvalidError('refusing to store an invalid value', issuesOf(parsed.error));
    return JSON.stringify(parsed.data);
  }

  #decode(entry: KvEntry): z.infer<S> | undefined {
    return this.#parse(entry.key, () => entry.json());
  }

  /** The stored JSON validated, or undefined (logged) when it is malformed or invalid. */
  #parse(key: string, json: () => unknown): z.infer<S> | undefined {
    try {
      const parsed = this.schema.safeParse(json());
      if (parsed.success) return parsed.data;
      this.logger.warn(
        { bucket: this.bucket, key, issues: issuesOf(parsed.error) },
        'invalid KV value ignored',
      );
    } catch {
      this.logger.warn({ bucket: this.bucket, key }, 'malformed KV value ignored');
    }
    return undefined;
  }

  async get(key: string): Promise<Versioned<z.infer<S>> | undefined> {
    if (this.leaderReads) return this.#leaderGet(key);
    const k = kvKey(key);
    const entry = await (this.direct?.last(this.kv, k) ?? this.kv.get(k));
    if (entry?.operation !== 'PUT') return undefined;
    const value = this.#decode(entry);
    return value === undefined ? undefined : { value, revision: entry.revision };
  }

  /** get() answered by the stream's leader: a message get, not a direct one (leaderReads). */
  async #leaderGet(key: string): Promise<Versioned<z.infer<S>> | undefined> {
    const stream = `KV_${this.bucket}`;
    const subject = `$KV.${this.bucket}.${kvKey(key)}`;
    const muxed = this.direct?.lastBySubject(this.jsm, stream, subject);
    const m = muxed
      ? await muxed
      : await this.jsm.streams
          .getMessage(stream, { last_by_subj: subject })
          .then((s) => s && { seq: s.seq, data: s.data, operation: s.header?.get('KV-Operation') });
    if (!m) return undefined; // never written
    if (m.operation === 'DEL' || m.operation === 'PURGE') return undefined;
    const value = this.#parse(key, () => JSON.parse(TEXT.decode(m.data)));
    return value === undefined ? undefined : { value, revision: m.seq };
  }

  put(key: string, value: z.input<S>): Promise<number> {
    const data = this.#encode(value);
    return this.#stored(() => this.#write(key, data) ?? this.kv.put(kvKey(key), data));
  }

  /** Succeeds only if the key does not exist: a compare-and-set for first writers. */
  create(key: string, value: z.input<S>): Promise<number> {
    const data = this.#encode(value);
    return this.#stored(async () => {
      try {
        const seq = await this.#write(key, data, 0);
        if (seq !== undefined) return seq;
      } catch (err) {
        // The key has a message: nats.js's create tells a deleted key (which it may take) from a
        // live one (which it may not).
        if (!isWrongLastSequence(err)) throw err;
      }
      return this.kv.create(kvKey(key), data);
    });
  }

  /** Succeeds only if the stored revision is still `revision`. */
  update(key: string, value: z.input<S>, revision: number): Promise<number> {
    const data = this.#encode(value);
    return this.#stored(
      () =>
        (revision > 0 ? this.#write(key, data, revision) : undefined) ??
        this.kv.update(kvKey(key), data, revision),
    );
  }

  /**
   * The write nats.js's Bucket makes (its subject for the key, its value codec, the expected
   * last sequence as a header) through the acked publisher; undefined without one.
   */
  #write(key: string, data: string, expectLast?: number): Promise<number> | undefined {
    const kv = this.kv;
    if (!this.publisher || !(kv instanceof Bucket)) return undefined;
    const ek = kv.encodeKey(kvKey(key));
    kv.validateKey(ek);
    return this.publisher
      .publish(kv.subjectForKey(ek, true), kv.codec.value.encode(data), {
        ...(expectLast === undefined ? {} : { expectLastSubjectSequence: expectLast }),
      })
      .then((ack) => ack.seq);
  }

  /**
   * A write nobody answered was not stored: on a NATS cluster the bucket's stream is between
   * leaders (seconds after its leader died), which nats.js reports as JetStreamNotEnabled with a
   * no-responders cause. Tried again for up to 30 s, so a handler does not fail half-applied
   * over it (a MajorDomo whose build result failed so ignored its redelivery as a result for a
   * build no longer wanted; fresh-clone CI, nats-cluster.test). Any other error goes to the caller.
   */
  async #stored(write: () => Promise<number>): Promise<number> {
    const deadline = performance.now() + 30_000;
    for (let delay = 100; ; delay = Math.min(delay * 2, 2_000)) {
      try {
        return await write();
      } catch (err) {
        if (!unanswered(err) || performance.now() + delay > deadline) throw err;
        this.logger.warn(
          { bucket: this.bucket, err: (err as Error).message, retryInMs: delay },
          'KV write unanswered (stream between leaders?); retrying',
        );
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  /** The key's value deleted (a DEL marker, as nats.js's delete writes), through the publisher when given. */
  async delete(key: string): Promise<void> {
    const k = kvKey(key);
    const kv = this.kv;
    if (!this.publisher || !(kv instanceof Bucket) || kv.hasWildcards(k)) {
      await kv.delete(k);
      return;
    }
    const ek = kv.encodeKey(k);
    kv.validateKey(ek);
    const h = headers();
    h.set('KV-Operation', 'DEL');
    await this.publisher.publish(kv.subjectForKey(ek, true), Empty, { headers: h });
  }

  /** Every key that holds a value now (one pass over the bucket, see latestMessages). */
  async keys(): Promise<string[]> {
    const out: string[] = [];
    for (const [key, m] of await latestMessages(this.jsm, this.bucket))
      if (m.operation === 'PUT') out.push(fromKvKey(key));
    return out;
  }

  /** Every current value (one pass over the bucket, see latestMessages). */
  async entries(): Promise<Map<string, Versioned<z.infer<S>>>> {
    const out = new Map<string, Versioned<z.infer<S>>>();
    for (const [key, m] of await latestMessages(this.jsm, this.bucket)) {
      if (m.operation !== 'PUT') continue;
      const value = this.#parse(key, () => JSON.parse(TEXT.decode(m.data)));
      if (value !== undefined) out.set(fromKvKey(key), { value, revision: m.revision });
    }
    return out;
  }

  /**
   * The keys written after revision `after` (0: every key), each with its current value, or
   * undefined when it was deleted (or its value is invalid, as entries() reads it); with the
   * bucket's last revision when the pass began and when its stream was made. A reader that holds
   * the bucket as of `after` applies these to hold it as of `last` (what a snapshot needs).
   */
  async changesSince(after: number): Promise<{
    changes: Map<string, Versioned<z.infer<S>> | undefined>;
    last: number;
    created: string;
  }> {
    const { latest, last, created } = await latestMessagesAfter(this.jsm, this.bucket, after);
    const changes = new Map<string, Versioned<z.infer<S>> | undefined>();
    for (const [key, m] of latest) {
      const value =
        m.operation === 'PUT' ? this.#parse(key, () => JSON.parse(TEXT.decode(m.data))) : undefined;
      changes.set(
        fromKvKey(key),
        value === undefined ? undefined : { value, revision: m.revision },
      );
    }
    return { changes, last, created };
  }

  /**
   * Calls back for every current value, then for every change, until the returned stop().
   * With `key`, only that key is watched. A value that fails validation is reported as absent
   * (`invalid: 'absent'`, the default: what grants access fails closed) or not at all
   * (`'ignore'`: the last valid value stands; on the rules bucket an invalid put read as a
   * delete retired a chef's rules until its next heartbeat).
   */
  async watch(
    onChange: (key: string, value: z.infer<S> | undefined, revision: number) => void,
    key?: string,
    options: { invalid?: 'absent' | 'ignore' } = {},
  ): Promise<() => void> {
    const iter = await this.kv.watch(key === undefined ? {} : { key: kvKey(key) });
    const ignore = options.invalid === 'ignore';
    void (async () => {
      for await (const e of iter) {
        const value = e.operation === 'PUT' ? this.#decode(e) : undefined;
        if (value === undefined && e.operation === 'PUT' && ignore) continue;
        onChange(fromKvKey(e.key), value, e.revision);
      }
    })();
    return () => stopWatch(iter);
  }

  /** watch() with `invalid: 'ignore'`: only valid values and deletes are reported. */
  watchValid(
    onChange: (key: string, value: z.infer<S> | undefined, revision: number) => void,
    key?: string,
  ): Promise<() => void> {
    return this.watch(onChange, key, { invalid: 'ignore' });
  }

  /** waitFor's waiters by key, all served by one watch of the bucket's updates. */
  readonly #waiters = new Map<string, Set<(value: z.infer<S>) => void>>();
  #shared: Promise<void> | undefined;

  /**
   * Resolves with the key's first value (current or later) for which `done` holds; rejects with
   * the signal's reason on abort. Every wait shares one updates-only watch of the bucket, then
   * reads the key once: a watch per wait (a chef waits on every task it submits) had the server
   * create and delete a consumer per task, and nats-server 2.9 kept memory for each one (about
   * 10 KB; the soak bench saw its RSS climb ~4 MB a minute at 2 edits/s).
   */
  async waitFor(
    key: string,
    done: (value: z.infer<S>) => boolean,
    signal?: AbortSignal,
  ): Promise<z.infer<S>> {
    signal?.throwIfAborted();
    const follower = await this.follow(key);
    try {
      return await follower.until(done, signal);
    } finally {
      follower.stop();
    }
  }

  /**
   * Listens to the key's updates (the shared watch waitFor uses), then reads it once: the read
   * sees whatever was written before, the watch everything after, so a caller that needs the
   * key's value now and may wait on it later (a chef: a build's task record, read when the
   * request arrives, waited on once the task is submitted) makes one read where a get and a
   * waitFor made two. Each follower must be stopped.
   */
  async follow(key: string): Promise<KeyFollower<z.infer<S>>> {
    await this.#sharedWatch();
    const set = this.#waiters.get(key) ?? new Set();
    this.#waiters.set(key, set);
    // Values heard while no until() waits, for the next one.
    const heard: z.infer<S>[] = [];
    let waiting: { check: (value: z.infer<S>) => void; stopped: () => void } | undefined;
    const listener = (value: z.infer<S>) => (waiting ? waiting.check(value) : heard.push(value));
    set.add(listener);
    // After the listener: whatever was written before it, this read sees.
    const read = this.get(key);
    read.catch(() => undefined);
    let stopped = false;
    return {
      read,
      stop: () => {
        if (stopped) return;
        stopped = true;
        waiting?.stopped();
        heard.length = 0;
        set.delete(listener);
        if (set.size === 0 && this.#waiters.get(key) === set) this.#waiters.delete(key);
      },
      until: (done, signal) =>
        new Promise((resolve, reject) => {
          const stoppedError = () =>
            new CpError(
              'CP_INTERNAL',
              `stopped following ${this.bucket} key ${key} while waiting on it`,
            );
          if (stopped) return reject(stoppedError());
          let finished = false;
          const finish = (fn: () => void) => {
            if (finished) return;
            finished = true;
            if (waiting === self) waiting = undefined;
            signal?.removeEventListener('abort', abort);
            fn();
          };
          const self = {
            check: (value: z.infer<S>) => {
              if (done(value)) finish(() => resolve(value));
            },
            stopped: () => finish(() => reject(stoppedError())),
          };
          const abort = () => finish(() => reject(signal?.reason));
          signal?.addEventListener('abort', abort, { once: true });
          if (signal?.aborted) return abort();
          waiting = self;
          for (const value of heard.splice(0)) self.check(value);
          read.then(
            (v) => {
              if (v) self.check(v.value);
            },
            (err) => finish(() => reject(err)),
          );
        }),
    };
  }

  /**
   * Starts (once) the watch of every update that serves waitFor; restarted if it ends, or if,
   * silent for WATCH_IDLE_MS while someone waits, its consumer is gone from the server: on a
   * NATS cluster the watch's consumer lives on one node, and when that node was killed -9
   * nats.js 3.4 did not make it again (its missed heartbeats went unheard), so a chef never
   * heard of its tasks' ends until the node came back. A restart is one consumer made again
   * plus a read of each waited key.
   */
  #sharedWatch(): Promise<void> {
    this.#shared ??= this.kv
      .watch({ include: 'updates' as KvWatchOptions['include'] })
      .then((iter) => {
        let heard = performance.now();
        // Silence alone is no reason: a long task's record may not change for hours, and a
        // watch made again every few seconds costs a consumer each time (nats-server 2.9.10
        // keeps some memory per consumer ever made). Only a watch whose consumer the server
        // no longer answers for is made again.
        const consumer = (iter as { _data?: { info?: (cached?: boolean) => Promise<unknown> } })
          ._data;
        let checking = false;
        const idle = setInterval(() => {
          if (checking || this.#waiters.size === 0 || performance.now() - heard < WATCH_IDLE_MS)
            return;
          heard = performance.now();
          checking = true;
          // biome-ignore lint/plugin: settled at once, where any failure means "make the watch again"
          void (consumer?.info?.(false) ?? Promise.reject(new Error('no watch consumer'))).then(
            () => {
              checking = false;
            },
            () => {
              checking = false;
              // The waited keys are read now, not only once a new watch is made: on a cluster
              // whose node just died, a new watch's consumer may be placed on that node (the
              // server does not know it is gone yet) and its creation times out, 5 s a try,
              // while the values waited for are readable from the stream's new leader.
              this.#readWaited();
              stopWatch(iter);
            },
          );
        }, WATCH_IDLE_MS / 2);
        idle.unref();
        void (async () => {
          for await (const e of iter) {
            heard = performance.now();
            const set = this.#waiters.get(fromKvKey(e.key));
            // A delete, purge or expiry marker has no bytes, and a stored value always has some
            // (JSON): an entry with bytes is a put. Told so without its operation, which nats.js
            // reads from the message's headers, parsed on first use: a runner's record carries
            // some (its compare-and-set's expected revision), and the chef hears each one (a few
            // microseconds an entry, issue #15).
            if (!set || e.value.length === 0) continue;
            const value = this.#decode(e);
            if (value !== undefined) for (const w of [...set]) w(value);
          }
          clearInterval(idle);
          // Ended (the connection closed, or silent): waiters still there get a new watch (tried
          // again while the bucket has no leader) and a fresh read.
          this.#shared = undefined;
          for (let delay = 250; this.#waiters.size > 0; delay = Math.min(delay * 2, 5_000)) {
            if (
              await this.#sharedWatch().then(
                () => true,
                () => false,
              )
            )
              break;
            await new Promise((r) => setTimeout(r, delay));
          }
          this.#readWaited();
        })();
      })
      .catch((err) => {
        this.#shared = undefined;
        throw err;
      });
    return this.#shared;
  }

  /** Reads each waited key once, for its waiters; a read that fails is left to the next one. */
  #readWaited(): void {
    for (const [k, waiting] of this.#waiters)
      void this.get(k).then(
        (v) => {
          if (v) for (const w of [...waiting]) w(v.value);
        },
        () => undefined,
      );
  }
}

const TEXT = new TextDecoder();

/** A waitFor watch silent this long while someone waits has its consumer checked. */
const WATCH_IDLE_MS = 5_000;

/**
 * Stops a KV watch and deletes its consumer. nats.js only unsubscribes: the server keeps the
 * ordered consumer for its 5-minute inactivity threshold, so a watch per task (a chef waiting
 * for its tasks to end) kept about a thousand idle consumers at a few tasks a second, and
 * nats-server's memory grew with them. The iterator holds its consumer in `_data`; the delete
 * is best effort (the threshold still removes a consumer it misses).
 */
function stopWatch(iter: Awaited<ReturnType<KV['watch']>>): void {
  iter.stop();
  const consumer = (iter as { _data?: { delete?: () => Promise<unknown> } })._data;
  consumer?.delete?.().catch(() => undefined);
}

/** nats.js's JetStreamNotEnabled for a request that met no responders: nothing was stored. */
function unanswered(err: unknown): boolean {
  const e = err as { name?: unknown; cause?: { name?: unknown; isNoResponders?: () => boolean } };
  return e?.name === 'JetStreamNotEnabled' && e.cause?.isNoResponders?.() === true;
}
