import { type Bus, issuesOf, MessageInvalidError, type TypedKv } from '@computepods/bus';
import {
  ArtefactRecord,
  type ArtefactStatus,
  buckets,
  checkRelativePath,
  subjects,
} from '@computepods/protocol';
import { z } from 'zod';
import { type PathIds, RecordIndex, type RecordState } from './record-index.js';
import { SnapshotRecords } from './snapshot-records.js';

type Rec = ArtefactRecord;

function isNormalRelative(path: string): boolean {
  try {
    return checkRelativePath(path) === path;
  } catch {
    return false;
  }
}

/**
 * States a restart derives again from the graph (its builds in flight are not restored): a
 * record that changes only to one of these is announced and kept in memory, not written to KV.
 * In a clean build every output went queued (written) then up to date (written again): 403 of
 * the 1027 writes of pnpm bench cbuild's clean build.
 */
const TRANSIENT: ReadonlySet<ArtefactStatus> = new Set(['queued']);

/** The longest a change waits for the next announcement while builds are in flight (ms). */
export const ANNOUNCE_HOLD_MS = 50;

/**
 * A record update() has validated already: written as it is (TypedKv would validate it again,
 * 14 % of MajorDomo's CPU in pnpm bench cbuild was zod, each record checked for its KV put and
 * again for its event).
 */
const Checked = z.custom<Rec>();

/** A batch of record deletes (ArtefactManager.removals): `remove` each path, then `close`. */
export interface Removals {
  remove(path: string): Promise<void>;
  close(): void;
}

/**
 * The ArtefactManager: one KV record per artefact (hash, size, producer, state, pods holding it),
 * mirrored in memory. Every change is announced on the artefact-state subject (cpctrl --watch and
 * the UI follow it) and written to KV, the truth after a restart; except a change to a transient
 * state only (TRANSIENT): the KV record then keeps the state before it and everything else the
 * memory's record has, and the next other change writes the whole record. A change is announced
 * once its KV write is stored, with every other change of the same event-loop turn in one
 * `artefact.states` message (#announce).
 */
export class ArtefactManager {
  readonly #records: RecordIndex;
  /** update()'s writes: the bucket of `kv`, with no second validation. */
  readonly #out: TypedKv<typeof Checked>;
  /** The records changed in this turn, to announce at its end, in order. */
  #pending: Rec[] = [];
  /** The cid shared by every pending record; null once two differ. */
  #pendingCid: string | undefined | null;
  /** The pending records' announcement, at the turn's end (immediate) or held (timer). */
  #immediate: NodeJS.Immediate | undefined;
  #timer: NodeJS.Timeout | undefined;
  /** While true, a turn's changes may wait for the next announcement (holdWhile). */
  #busy: () => boolean = () => false;
  #holdMs = ANNOUNCE_HOLD_MS;
  /**
   * Per path, the last write issued and not yet settled. MajorDomo's serial queue goes on while a
   * message's writes are in flight (majordomo.ts, STORED), so the next message may write the same
   * path: its write waits for the one before. Writes on one connection keep their order anyway;
   * this keeps it when the first is sent again (TypedKv retries a write nobody answered, a
   * cluster's stream between leaders).
   */
  readonly #writing = new Map<string, Promise<void>>();

  private constructor(
    readonly bus: Bus,
    readonly kv: TypedKv<typeof ArtefactRecord>,
    ids: PathIds | undefined,
  ) {
    this.#out = kv.withSchema(Checked);
    this.#records = new RecordIndex(ids);
  }

  /**
   * From a snapshot's records (written by a MajorDomo from this map), with no listing of the
   * bucket; the keys written since are applied with stored(). They are not checked again as
   * stored() checks a key's value: each was in this map, under its own normalised path, when the
   * snapshot was taken, and the snapshot's parts hash to its head (snapshot-store.ts). At 100k
   * records stored() one by one took ~100 ms of a restart (its path check and several map writes
   * each; a CPU profile of pnpm bench scale's restore). `ids`: the graph's path ids, by which the
   * records of the paths it holds are kept (RecordIndex); none: every record by its path.
   */
  static async fromRecords(
    bus: Bus,
    records: Iterable<Rec> | SnapshotRecords,
    ids?: PathIds,
  ): Promise<ArtefactManager> {
    const kv = await bus.kv(buckets.artefacts(bus.project), ArtefactRecord);
    const m = new ArtefactManager(bus, kv, ids);
    // A snapshot's, each record made when first read (RecordIndex.loadSnapshot).
    if (records instanceof SnapshotRecords) m.#records.loadSnapshot(records);
    else m.#records.load(records);
    return m;
  }

  /**
   * Takes a key's value as stored in KV (undefined: deleted or invalid) into the map, with no
   * write; returns the record it had before.
   */
  stored(key: string, value: Rec | undefined): Rec | undefined {
    const prev = this.#records.get(key);
    this.#records.delete(key);
    if (!value) return prev;
    // Every path MajorDomo writes is normalised and is its key: a record that is not (written
    // by hand, by an older MajorDomo) is skipped, not restored into the graph, where it
    // stopped every start ("a//b": cannot start, invalid artefact path, found by fuzzing).
    if (value.path !== key || !isNormalRelative(key)) {
      this.bus.logger.error(
        { key, path: value.path.slice(0, 300) },
        'artefact record skipped: its path is not its key or not a normalised relative path',
      );
      return prev;
    }
    this.#records.set(key, value);
    return prev;
  }

  get(path: string): Rec | undefined {
    return this.#records.get(path);
  }

  /** Every record, by path (for listings). */
  all(): Rec[] {
    return [...this.#records.values()].sort((a, b) => a.path.localeCompare(b.path));
  }

  /** Records per state, kept as they change. */
  counts(): Partial<Record<ArtefactStatus, number>> {
    return this.#records.counts();
  }

  /** A page of the records by path (see RecordIndex.page). */
  page(limit: number, cursor?: string, prefix?: string): { records: Rec[]; next?: string } {
    return this.#records.page(limit, cursor, prefix);
  }

  /** Every record, in no order: for a pass over all of them (100,000s at a restart), no sort. */
  records(): IterableIterator<Rec> {
    return this.#records.values();
  }

  /**
   * The records in one state: a restart's passes for a state few records are in (stuck cycles,
   * cancelled builds) make only those of a snapshot's records (RecordIndex.withStatus).
   */
  withStatus(status: ArtefactStatus): Iterable<Rec> {
    return this.#records.withStatus(status);
  }

  /**
   * Every record's path, state and whether it is an auxiliary's, without making a snapshot's
   * records (RecordIndex.states: one object written over, read it before the next).
   */
  states(): Iterable<Readonly<RecordState>> {
    return this.#records.states();
  }

  get size(): number {
    return this.#records.size;
  }

  /** Merges a change into the record; writes and announces it only if something changed. */
  async update(
    path: string,
    change: Partial<Omit<Rec, 'path' | 'updated'>> & { status: ArtefactStatus },
    cid?: string,
  ): Promise<Rec> {
    const prev = this.#records.get(path);
    const next: Rec = {
      path,
      sha256: null,
      size: null,
      pods: [],
      ...prev,
      ...change,
      updated: new Date().toISOString(),
    };
    const keepsError = ['failed', 'not_converging', 'cancelled'].includes(next.status);
    if (change.error === undefined && !keepsError) delete next.error;
    if (next.status !== 'not_converging') delete next.passes;
    if (next.status !== 'cancelled') delete next.held;
    if (prev && same(prev, next)) return prev;
    // Validated once, here, for its KV write and its announcement.
    const checked = ArtefactRecord.safeParse(next);
    if (!checked.success) {
      throw new MessageInvalidError(
        `refusing to record an invalid artefact record for ${path.slice(0, 300)}`,
        issuesOf(checked.error),
      );
    }
    this.#records.set(path, next);
    const rec = checked.data;
    if (!transientOnly(prev, next)) {
      await this.#inOrder(path, async () => {
        await this.#out.put(path, rec);
        this.#announce(rec, cid);
      });
    } else if (this.#writing.has(path)) {
      // After the path's write in flight and its announcement: followers hear the changes of a
      // path in the order they were made, so the last they hear is the record's state.
      await this.#inOrder(path, async () => this.#announce(rec, cid));
    } else this.#announce(rec, cid);
    return next;
  }

  /**
   * While `busy()` (builds in flight: MajorDomo), a turn's changes wait up to `holdMs` for the
   * next announcement instead of going at the turn's end. A build's outputs are announced up to
   * date once their KV writes are stored, a turn of their own, and the next build's queued
   * outputs in the turn its request leaves (announceNow): one message for both, not two, to
   * every follower (the fswatchers, cpctrl --watch, the UI). pnpm bench cbuild, 201 compiles:
   * 400 messages a clean build before, 360 with a 20 ms hold, 311 with 50 ms (at load 6-8 a
   * compile's result comes every ~25 ms; one a compile is the least: a request's queued outputs
   * must go before it). Not busy (the last build's result), the turn's changes go at its end
   * as before, so nothing waits at the end of a build.
   */
  holdWhile(busy: () => boolean, holdMs = ANNOUNCE_HOLD_MS): void {
    this.#busy = busy;
    this.#holdMs = holdMs;
  }

  /**
   * Announces `rec` at the end of this event-loop turn (setImmediate), with the turn's other
   * changes in one message: the results, deletions and queued outputs a turn handles (a batch of
   * KV acks, a files.changed) go out together, not as one message each to every follower. While
   * builds are in flight, later (holdWhile).
   */
  #announce(rec: Rec, cid: string | undefined): void {
    if (this.#pending.length === 0) this.#pendingCid = cid;
    else if (this.#pendingCid !== cid) this.#pendingCid = null;
    this.#pending.push(rec);
    if (this.#busy()) this.#timer ??= setTimeout(() => this.#flush(), this.#holdMs);
    else this.#immediate ??= setImmediate(() => this.#flush());
  }

  /**
   * Announces the turn's pending changes now, ahead of what is sent next: a build request goes
   * after its outputs' `queued` (the fswatcher expects their writes from it, and the request's
   * own message left before the end-of-turn announcement could reach the socket first).
   */
  announceNow(): void {
    if (this.#pending.length > 0) this.#flush();
  }

  #flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    clearImmediate(this.#immediate);
    this.#immediate = undefined;
    if (this.#pending.length === 0) return;
    const records = this.#pending;
    const cid = this.#pendingCid ?? undefined;
    this.#pending = [];
    const { bus } = this;
    try {
      bus.emitValidated('artefact.states', subjects.artefactState(bus.project), { records }, cid);
    } catch (err) {
      // Closed meanwhile (MajorDomo stopping): live events only, KV keeps the records.
      bus.logger.warn(
        { err: (err as Error).message, records: records.length },
        'artefact states not announced: the NATS connection is closed',
      );
    }
  }

  /** Runs `write` once the path's write before it (if any is in flight) has settled. */
  #inOrder(path: string, write: () => Promise<unknown>): Promise<void> {
    const before = this.#writing.get(path);
    const written = (before ? before.then(write) : write()).then(() => undefined);
    const settled = written.catch(() => undefined);
    this.#writing.set(path, settled);
    void settled.then(() => {
      if (this.#writing.get(path) === settled) this.#writing.delete(path);
    });
    return written;
  }

  /** The pods holding `sha256` at `path` once `pod` has it too: the new hash replaces the old. */
  podsWith(path: string, sha256: string, pod: string): string[] {
    const prev = this.#records.get(path);
    if (prev?.sha256 !== sha256) return [pod];
    return prev.pods.includes(pod) ? prev.pods : [...prev.pods, pod];
  }

  /** Records that `pod` holds `path` with `sha256`; nothing when the record has another hash. */
  async heldBy(path: string, sha256: string, pod: string, cid?: string): Promise<void> {
    const prev = this.#records.get(path);
    if (prev?.sha256 !== sha256 || prev.pods.includes(pod)) return;
    await this.update(path, { status: prev.status, pods: [...prev.pods, pod] }, cid);
  }

  /**
   * Records deleted together (the deleted files of one files.changed: `make clean`, pnpm bench
   * cbuild's warm clean). Each delete is issued at once, in order with the batch's other writes
   * of its path; once `close()` is called and every delete of the batch is stored, their
   * `missing` records are announced together: one artefact.states message, whatever turn each
   * delete's ack came in (one waiting behind its path's write before it comes a round trip
   * later: announced at its own ack, the batch was split; under load, so were three deletes sent
   * together). A path deleted again in the same batch (written in between) is announced at its
   * own ack: the batch waits for its first delete, and that one waits for the second.
   */
  removals(cid?: string): Removals {
    const deletes: Promise<void>[] = [];
    const seen = new Set<string>();
    let close!: () => void;
    const closed = new Promise<void>((r) => {
      close = r;
    });
    const stored = closed.then(() => Promise.allSettled(deletes));
    return {
      remove: (path) => {
        const prev = this.#records.get(path);
        if (!prev) return Promise.resolve();
        this.#records.delete(path);
        const barrier = seen.has(path) ? undefined : stored;
        seen.add(path);
        let deleted: (() => void) | undefined;
        if (barrier) deletes.push(new Promise<void>((r) => (deleted = r)));
        return this.#inOrder(path, async () => {
          try {
            await this.kv.delete(path);
          } finally {
            deleted?.();
          }
          await barrier;
          // A validated record with another status and no hash: valid, announced as it is.
          this.#announce({ ...prev, status: 'missing', sha256: null }, cid);
        });
      },
      close,
    };
  }
}

/**
 * `next` differs from `prev` only in a transient state (and the error and `updated` it drops):
 * nothing a restart reads from the record (hashes, holders, producer, a hold's key, a cycle's
 * passes) changes. No record before: the graph knows the output and its producer from the rules.
 */
function transientOnly(prev: Rec | undefined, next: Rec): boolean {
  if (!TRANSIENT.has(next.status)) return false;
  if (!prev) return true;
  return same({ ...prev, status: next.status, error: next.error }, next);
}

function same(a: Rec, b: Rec): boolean {
  return (
    a.status === b.status &&
    a.sha256 === b.sha256 &&
    a.cutoff === b.cutoff &&
    sameProjections(a.projections, b.projections) &&
    a.size === b.size &&
    a.producer === b.producer &&
    a.error === b.error &&
    a.buildId === b.buildId &&
    a.passes === b.passes &&
    a.held === b.held &&
    a.auxiliary === b.auxiliary &&
    a.pods.join() === b.pods.join() &&
    a.written?.pod === b.written?.pod &&
    a.written?.mtimeNs === b.written?.mtimeNs
  );
}

function sameProjections(a: Rec['projections'], b: Rec['projections']): boolean {
  if (a === b) return true;
  if (!a || !b) return false;
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => a[k] === b[k]);
}
