import type { Logger, TypedKv, Versioned } from '@computepods/bus';
import { fromKvKey } from '@computepods/protocol';
import type { z } from 'zod';

const decoder = new TextDecoder();

/** What the watch delivers (a KV entry of @nats-io/kv, not a dependency of MajorDomo's). */
interface KvEntry {
  readonly key: string;
  readonly operation: string;
  readonly revision: number;
  readonly created: Date;
  readonly value: Uint8Array;
}

/** A key's last value as the watch delivered it: its bytes, decoded when a listing first reads it. */
interface Held<T> {
  readonly bytes: Uint8Array;
  readonly revision: number;
  readonly written: number;
  /** undefined: not decoded yet; null: invalid (absent from listings). */
  decoded?: { readonly value: T } | null;
}

/**
 * A bucket's valid values, kept in memory by one watch, for listings a REST call asks for. A
 * listing read from the bucket per call (TypedKv.entries) fetches and validates every value on
 * every call: the tasks bucket, flooded with thousands of keys (pnpm bench fuzz), made each
 * GET /api/tasks seconds of MajorDomo's event loop, and every other input path stalled behind
 * it. Here each value is decoded at most once, and only when a call lists it: not as it is
 * written (validating every task-record update, most overwritten before anyone lists them, was
 * 5.5 % of MajorDomo's CPU in a clean build of pnpm bench cbuild).
 *
 * A call first waits (up to `catchUpMs`) until the watch has delivered the bucket's last
 * revision as it is when the call begins, so a value written before the call is in its answer.
 * An invalid value counts as absent (as entries() reads it). A bucket with a max age (task
 * records: CP_RECORD_MAX_AGE_S) drops values silently, with no delete a watch would see: a value
 * older than the max age is dropped here too when a call reads the map.
 */
export class KvMirror<S extends z.ZodType> {
  /** In the order last written (a rewritten key moves to the end): the oldest come first. */
  readonly #values = new Map<string, Held<z.infer<S>>>();
  /** The highest revision the watch delivered. */
  #seen = 0;
  /** The bucket's max age in ms (0: none), as its configuration said when last read. */
  #maxAgeMs = 0;
  readonly #waiters = new Set<{ revision: number; done: () => void }>();
  #stop: (() => void) | undefined;
  #stopped = false;

  private constructor(
    readonly kv: TypedKv<S>,
    readonly bucket: string,
    readonly logger: Logger,
    readonly catchUpMs: number,
  ) {}

  static async start<S extends z.ZodType>(
    kv: TypedKv<S>,
    bucket: string,
    logger: Logger,
    options: { catchUpMs?: number } = {},
  ): Promise<KvMirror<S>> {
    const m = new KvMirror(kv, bucket, logger, options.catchUpMs ?? 2_000);
    m.#maxAgeMs = ((await kv.kv.status()).streamInfo.config.max_age ?? 0) / 1e6;
    await m.#watch();
    return m;
  }

  async #watch(): Promise<void> {
    const iter = await this.kv.kv.watch({});
    this.#stop = () => {
      iter.stop();
      (iter as { _data?: { delete?: () => Promise<unknown> } })._data
        ?.delete?.()
        .catch(() => undefined);
    };
    void (async () => {
      for await (const e of iter) this.#apply(e);
      // Ended (the connection closed): a new watch replays the bucket's last values.
      if (this.#stopped) return;
      this.#values.clear();
      this.#seen = 0;
      await this.#watch().catch((err) =>
        this.logger.error({ err, bucket: this.bucket }, 'bucket mirror not restarted'),
      );
    })();
  }

  #apply(e: KvEntry): void {
    const key = fromKvKey(e.key);
    this.#values.delete(key);
    // A copy: the delivered bytes may be a view of a larger buffer the map would keep alive.
    if (e.operation === 'PUT')
      this.#values.set(key, {
        bytes: e.value.slice(),
        revision: e.revision,
        written: e.created.getTime(),
      });
    // Also here, not only when a call reads the map: with nobody listing the tasks, every
    // record ever written stayed in memory (pnpm bench soak: +0.55 MiB/min of heap).
    this.#dropExpired();
    if (e.revision > this.#seen) this.#seen = e.revision;
    for (const w of this.#waiters) if (w.revision <= this.#seen) w.done();
  }

  /** A held value decoded (once: the result is kept), or null when it is invalid. */
  #decode(key: string, held: Held<z.infer<S>>): { readonly value: z.infer<S> } | null {
    if (held.decoded !== undefined) return held.decoded;
    held.decoded = null;
    try {
      const parsed = this.kv.schema.safeParse(JSON.parse(decoder.decode(held.bytes)));
      if (parsed.success) held.decoded = { value: parsed.data };
    } catch {
      // not JSON: absent, as an invalid value
    }
    if (!held.decoded) this.logger.warn({ bucket: this.bucket, key }, 'invalid KV value ignored');
    return held.decoded;
  }

  /** The bucket's valid values, once the watch has caught up with the bucket (or catchUpMs). */
  async values(): Promise<ReadonlyMap<string, Versioned<z.infer<S>>>> {
    const { state, config } = (await this.kv.kv.status()).streamInfo;
    const revision = state.last_seq;
    if (state.messages > 0 && revision > this.#seen)
      await new Promise<void>((resolve) => {
        const w = {
          revision,
          done: () => {
            clearTimeout(timer);
            this.#waiters.delete(w);
            resolve();
          },
        };
        // The last message may be gone (expired): the map as it is then.
        const timer = setTimeout(w.done, this.catchUpMs);
        this.#waiters.add(w);
      });
    this.#maxAgeMs = (config.max_age ?? 0) / 1e6;
    this.#dropExpired();
    const out = new Map<string, Versioned<z.infer<S>>>();
    for (const [key, held] of this.#values) {
      const decoded = this.#decode(key, held);
      if (decoded) out.set(key, { value: decoded.value, revision: held.revision });
    }
    return out;
  }

  /** The values held now, valid or not yet known (expired ones are dropped as new ones come in). */
  get size(): number {
    return this.#values.size;
  }

  /** Expired from the bucket: oldest first, so the scan stops at the first one still kept. */
  #dropExpired(): void {
    if (this.#maxAgeMs <= 0) return;
    const cutoff = Date.now() - this.#maxAgeMs;
    for (const [key, v] of this.#values) {
      if (v.written > cutoff) break;
      this.#values.delete(key);
    }
  }

  stop(): void {
    this.#stopped = true;
    this.#stop?.();
    for (const w of this.#waiters) w.done();
  }
}

/**
 * The valid values of the keys matching `filter` (a NATS wildcard, e.g. `queue.>`), read with a
 * filtered watch: the server sends only those keys, so the read costs what they hold, not what
 * the whole bucket holds (a config bucket flooded with thousands of other keys made every
 * GET /api/resources list them all). Ends at the count pending when the watch began.
 */
export async function readMatching<S extends z.ZodType>(
  kv: TypedKv<S>,
  filter: string,
): Promise<Map<string, Versioned<z.infer<S>>>> {
  const out = new Map<string, Versioned<z.infer<S>>>();
  const iter = await kv.kv.watch({ key: filter });
  // The watch's consumer (nats.js keeps it in `_data`, as TypedKv's listings use it too).
  const consumer = (
    iter as {
      _data?: {
        info(cached?: boolean): Promise<{ num_pending: number }>;
        delete(): Promise<unknown>;
      };
    }
  )._data;
  try {
    // biome-ignore lint/plugin: caught below, where it means only "cannot tell what is pending"
    if (!consumer) throw new Error('nats.js no longer keeps a KV watch consumer in _data');
    const pending = (await consumer.info(true)).num_pending;
    let n = 0;
    if (pending > 0)
      for await (const e of iter) {
        const key = fromKvKey(e.key);
        let value: z.infer<S> | undefined;
        if (e.operation === 'PUT') {
          try {
            const parsed = kv.schema.safeParse(e.json());
            if (parsed.success) value = parsed.data;
          } catch {
            value = undefined;
          }
        }
        if (value === undefined) out.delete(key);
        else out.set(key, { value, revision: e.revision });
        if (++n >= pending || e.delta === 0) break;
      }
  } finally {
    iter.stop();
    consumer?.delete().catch(() => undefined);
  }
  return out;
}
