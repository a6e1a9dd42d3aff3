import type { DependencyManager, PathStrings } from '@computepods/depgraph';
import { type ArtefactRecord, CpError } from '@computepods/protocol';
import { z } from 'zod';
import type { ArtefactManager } from './artefacts.js';

/**
 * How a snapshot stores its artefact records (snapshot-store.ts, format 7): by column, one value
 * per record in each, the strings they repeat (states, times, build ids, pods, hashes the graph
 * does not hold) once in `strings`. A record whose path the graph holds leaves out what the
 * graph holds already: its path (the graph's path id in `at`), and its sha256, cutoff and
 * producer where they equal the graph's hash and producer (code FROM_GRAPH).
 *
 * Format 5 stored each record as a JSON object: at 100k artefacts its JSON.parse (~75 ms), the
 * strings it made and shareStrings() then replaced (~15 ms), the fields deleted and added again
 * (~17 ms) and their garbage (scavenges where everything survives) were a fifth of a restart's
 * CPU (bench/scale/restarts.ts' profile). A record is now made once, in one go, its strings
 * shared from the start.
 *
 * Each integer column is stored as runs (runsOf()): neighbours in the graph's path order
 * mostly share a state, codes and pods, and path ids and the codes of new strings go up by one,
 * so 100,000s of values are a few runs, not an array JSON.parse makes of them (format 6: ~20 ms
 * and ~9 MB the young generation copied at 100k artefacts).
 *
 * A string field's code: ABSENT, NULL, FROM_GRAPH, or STRING + its index in `strings`. A field a
 * column cannot hold (another type, a field no column has) goes whole into `rest` with the
 * record's index, as does the path of a record the graph does not hold (an auxiliary; `at` -1).
 */
const ABSENT = 0;
const NULL = 1;
const FROM_GRAPH = 2;
const STRING = 3;

/** A column: checked as an array here, its values as they are decoded (100,000s of them). */
const Column = z.custom<unknown[]>(Array.isArray, 'not an array');

export const StoredRecords = z.object({
  /** How many records. */
  count: z.number().int().nonnegative(),
  strings: z.array(z.string()),
  /** The pods lists, each as indices into `strings`. */
  podLists: z.array(z.array(z.number().int().nonnegative())),
  /** The graph's path id of each record; -1: a path the graph does not hold (its path in rest). */
  at: Column,
  status: Column,
  sha256: Column,
  cutoff: Column,
  producer: Column,
  /** The size as it is (a number or null), not in runs. */
  size: Column,
  /** Index into podLists. */
  pods: Column,
  updated: Column,
  buildId: Column,
  writtenPod: Column,
  writtenMtime: Column,
  /** [record index, its other fields], by record index. */
  rest: z.array(z.tuple([z.number().int().nonnegative(), z.record(z.string(), z.unknown())])),
});
export type StoredRecords = z.infer<typeof StoredRecords>;

/** The string columns: a record's field by the column that holds it. */
const CODED = ['status', 'sha256', 'cutoff', 'producer', 'updated', 'buildId'] as const;
/**
 * Columns whose values are mostly each record's own (times, hashes the graph does not hold): a
 * value is looked for only in the record before (neighbours built together share one), not in
 * a map of every string, which at 100k records was half of compactRecords' time.
 */
const MOSTLY_NEW: ReadonlySet<string> = new Set(['sha256', 'cutoff', 'updated', 'writtenMtime']);
/** The columns stored as runs: every one but size. */
const IN_RUNS = ['at', ...CODED, 'pods', 'writtenPod', 'writtenMtime'] as const;
type Columns = Omit<StoredRecords, 'count' | 'strings' | 'podLists' | 'rest'>;

/** The records as a snapshot stores them, in the graph's path order, then those it lacks. */
export function compactRecords(
  dm: DependencyManager,
  artefacts: Pick<ArtefactManager, 'get' | 'records' | 'size'>,
): StoredRecords {
  const out = new ColumnsBuilder();
  const paths = dm.pathsInOrder();
  const held: PathStrings = { path: '', hash: undefined, producer: undefined };
  let n = 0;
  for (const [id, path] of paths.entries()) {
    const rec = artefacts.get(path);
    if (!rec) continue;
    out.add(rec, id, dm.stringsAt(id, held));
    n++;
  }
  if (n < artefacts.size)
    for (const rec of artefacts.records()) if (!dm.strings(rec.path)) out.add(rec, -1, undefined);
  return out.stored();
}

/** Records added a column value at a time. */
class ColumnsBuilder {
  readonly #strings: string[] = [];
  readonly #index = new Map<string, number>();
  /** The last value and code of each MOSTLY_NEW column. */
  readonly #last = new Map<string, [string, number]>();
  readonly #podLists: number[][] = [];
  readonly #podIndex = new Map<string, number>();
  readonly #cols: { [K in keyof Columns]: (number | null)[] } = {
    at: [],
    status: [],
    sha256: [],
    cutoff: [],
    producer: [],
    size: [],
    pods: [],
    updated: [],
    buildId: [],
    writtenPod: [],
    writtenMtime: [],
  };
  /** [record index, its fields no column holds] (StoredRecords.rest). */
  readonly #records: [number, Record<string, unknown>][] = [];

  add(
    rec: ArtefactRecord,
    id: number,
    held: { hash: string | undefined; producer: string | undefined } | undefined,
  ): void {
    const c = this.#cols;
    const i = c.at.length;
    const {
      path,
      status,
      sha256,
      cutoff,
      producer,
      size,
      pods,
      updated,
      buildId,
      written,
      ...more
    } = rec as ArtefactRecord & Record<string, unknown>;
    this.#rest = undefined;
    c.at.push(id);
    if (id < 0) this.#keep('path', path);
    this.#coded('status', status, undefined);
    this.#coded('sha256', sha256, held?.hash);
    this.#coded('cutoff', cutoff, held?.hash);
    this.#coded('producer', producer, held?.producer);
    this.#coded('updated', updated, undefined);
    this.#coded('buildId', buildId, undefined);
    if (typeof size === 'number' || size === null) c.size.push(size);
    else {
      c.size.push(null);
      this.#keep('size', size);
    }
    const list = this.#podList(pods);
    if (list === undefined) this.#keep('pods', pods);
    c.pods.push(list ?? 0);
    const pod = isWritten(written) ? this.#code(written.pod) : undefined;
    const mtime = isWritten(written) ? this.#code(written.mtimeNs, 'writtenMtime') : undefined;
    if (pod !== undefined && mtime !== undefined) {
      c.writtenPod.push(pod);
      c.writtenMtime.push(mtime);
    } else {
      c.writtenPod.push(ABSENT);
      c.writtenMtime.push(ABSENT);
      if (written !== undefined) this.#keep('written', written);
    }
    for (const k in more) if (more[k] !== undefined) this.#keep(k, more[k]);
    if (this.#rest) this.#records.push([i, this.#rest]);
  }

  /** The record's fields no column holds, as add() meets them. */
  #rest: Record<string, unknown> | undefined;

  #keep(name: string, value: unknown): void {
    this.#rest ??= {};
    this.#rest[name] = value;
  }

  /** A string field into its column: FROM_GRAPH when it is the graph's `graph`, else coded. */
  #coded(name: (typeof CODED)[number], v: unknown, graph: string | undefined): void {
    const code =
      v !== undefined && v === graph ? FROM_GRAPH : this.#code(v, MOSTLY_NEW.has(name) ? name : '');
    if (code === undefined) this.#keep(name, v);
    this.#cols[name].push(code ?? ABSENT);
  }

  stored(): StoredRecords {
    const c = this.#cols;
    const runs = Object.fromEntries(IN_RUNS.map((name) => [name, runsOf(c[name] as number[])]));
    return {
      count: c.at.length,
      strings: this.#strings,
      podLists: this.#podLists,
      ...(runs as Omit<Columns, 'size'>),
      size: c.size,
      rest: this.#records,
    };
  }

  /** The code of a string field's value (a string: STRING or above); undefined: none stands for it. */
  #code(v: unknown, column = ''): number | undefined {
    if (v === undefined) return ABSENT;
    if (v === null) return NULL;
    if (typeof v !== 'string') return undefined;
    if (!column) return STRING + this.#stringIndex(v);
    // A column of mostly new values: only the one before is looked at (no map of them all).
    const last = this.#last.get(column);
    if (last?.[0] === v) return last[1];
    const code = STRING + this.#strings.length;
    this.#strings.push(v);
    this.#last.set(column, [v, code]);
    return code;
  }

  #stringIndex(s: string): number {
    let i = this.#index.get(s);
    if (i === undefined) {
      i = this.#strings.length;
      this.#strings.push(s);
      this.#index.set(s, i);
    }
    return i;
  }

  #podList(pods: unknown): number | undefined {
    if (!Array.isArray(pods) || !pods.every((p) => typeof p === 'string')) return undefined;
    const key = pods.join('\n');
    let i = this.#podIndex.get(key);
    if (i === undefined) {
      i = this.#podLists.length;
      this.#podLists.push(pods.map((p: string) => this.#stringIndex(p)));
      this.#podIndex.set(key, i);
    }
    return i;
  }
}

/** A `written` a column holds: its pod and mtime as strings, nothing else. */
function isWritten(w: unknown): w is { pod: string; mtimeNs: string } {
  if (typeof w !== 'object' || w === null) return false;
  let keys = 0;
  for (const _ in w) keys++;
  const { pod, mtimeNs } = w as Record<string, unknown>;
  return keys === 2 && typeof pod === 'string' && typeof mtimeNs === 'string';
}

/** Raised inside expandRecords for why the records do not fit (caught there, returned). */
class Unfit extends CpError {
  constructor(why: string) {
    super('CP_INVALID', why);
  }
}

/**
 * A snapshot's stored records, checked against the graph loaded beside them, or why they do not
 * fit that graph (then the snapshot is not used). Each record is made whole when first read
 * (SnapshotRecords.record): a restart reads few of them before it is ready, and a state or a
 * path from the columns (RecordIndex keeps them so). At 100k artefacts making them all was
 * ~18 ms and ~10 MB of objects (records and their `written`) that the young generation copied
 * and promoted before ready; the columns are a few typed arrays.
 */
export function snapshotRecords(
  dm: DependencyManager,
  stored: StoredRecords,
): SnapshotRecords | string {
  try {
    return new SnapshotRecords(dm, stored);
  } catch (err) {
    if (err instanceof Unfit) return err.message;
    throw err;
  }
}

/** Every record made whole at once (snapshotRecords, each read). */
export function expandRecords(
  dm: DependencyManager,
  stored: StoredRecords,
): ArtefactRecord[] | string {
  const recs = snapshotRecords(dm, stored);
  if (typeof recs === 'string') return recs;
  return Array.from({ length: recs.count }, (_, i) => recs.record(i));
}

/**
 * A snapshot's records by index, as columns (each decoded from its runs into a typed array),
 * checked as a whole record would be when made. What a record takes from the graph (its path,
 * and its hash and producer where stored as the graph's) is the graph's at the restore, kept
 * per record: the graph changes after, a record made later must not. The pods lists are shared
 * frozen (MajorDomo replaces a record's list, never changes one in place).
 */
export class SnapshotRecords {
  readonly count: number;
  /** The graph's path id of each record (-1: a path the graph does not hold). */
  readonly at: Int32Array;
  readonly #strings: readonly string[];
  readonly #lists: readonly (readonly string[])[];
  readonly #size: readonly unknown[];
  readonly #cols: Record<(typeof IN_RUNS)[number], Int32Array>;
  /** Per record, the graph's path, hash and producer at the restore. */
  readonly #path: (string | undefined)[];
  readonly #hash: (string | undefined)[];
  readonly #producer: (string | undefined)[];
  /** [record index, its other fields] by record index (StoredRecords.rest). */
  readonly #rest: Map<number, Record<string, unknown>>;

  constructor(dm: DependencyManager, stored: StoredRecords) {
    const { strings, count: n, size, rest } = stored;
    if (size.length !== n) throw new Unfit(`snapshot record sizes: ${size.length} of ${n}`);
    const cols = Object.fromEntries(
      IN_RUNS.map((name) => [name, decodeRuns(stored[name], n, name)]),
    ) as Record<(typeof IN_RUNS)[number], Int32Array>;
    const lists = stored.podLists.map((l) =>
      Object.freeze(
        l.map((s) => {
          const p = strings[s];
          if (p === undefined) throw new Unfit(`a snapshot pods list names no string (${s})`);
          return p;
        }),
      ),
    );
    this.count = n;
    this.at = cols.at;
    this.#strings = strings;
    this.#lists = lists;
    this.#size = size;
    this.#cols = cols;
    this.#path = new Array(n);
    this.#hash = new Array(n);
    this.#producer = new Array(n);
    this.#rest = new Map();
    let r = 0;
    const held: PathStrings = { path: '', hash: undefined, producer: undefined };
    const code = (c: number, i: number, graph: string | undefined, what: string) => {
      if (c === FROM_GRAPH) {
        if (graph === undefined) throw new Unfit(`snapshot record ${i}: its graph has no ${what}`);
      } else if (c !== ABSENT && c !== NULL && strings[c - STRING] === undefined)
        throw new Unfit(`snapshot record ${i}: ${what} code ${c}`);
    };
    for (let i = 0; i < n; i++) {
      const id = cols.at[i] as number;
      let graph: PathStrings | undefined;
      if (id !== -1) {
        graph = dm.stringsAt(id, held);
        if (!graph) throw new Unfit(`a snapshot record names no path of its graph (${id})`);
        this.#path[i] = graph.path;
        this.#hash[i] = graph.hash;
        this.#producer[i] = graph.producer;
      }
      const list = cols.pods[i] as number;
      if (!lists[list]) throw new Unfit(`snapshot record ${i}: pods list ${list}`);
      const sz = size[i];
      if (typeof sz !== 'number' && sz !== null) throw new Unfit(`snapshot record ${i}: size`);
      code(cols.status[i] as number, i, undefined, 'status');
      code(cols.sha256[i] as number, i, graph?.hash, 'hash');
      code(cols.updated[i] as number, i, undefined, 'time');
      code(cols.cutoff[i] as number, i, graph?.hash, 'hash');
      code(cols.producer[i] as number, i, graph?.producer, 'producer');
      code(cols.buildId[i] as number, i, undefined, 'build id');
      code(cols.writtenPod[i] as number, i, undefined, 'pod');
      code(cols.writtenMtime[i] as number, i, undefined, 'mtime');
      const more = rest[r];
      let path = graph?.path;
      if (more && more[0] === i) {
        this.#rest.set(i, more[1]);
        if ('path' in more[1]) path = more[1].path as string;
        r++;
      }
      if (typeof path !== 'string') throw new Unfit('a snapshot record has no path');
    }
    if (r < rest.length) throw new Unfit(`snapshot record fields for record ${rest[r]?.[0]}`);
  }

  /** Whether record `i` has fields no column holds (an auxiliary's, a stuck cycle's passes). */
  hasMore(i: number): boolean {
    return this.#rest.has(i);
  }

  /** Record `i`'s path (one without fields of its own besides the columns': the graph's). */
  path(i: number): string {
    return this.#path[i] ?? (this.#rest.get(i)?.path as string);
  }

  /** Record `i`'s state, as its record has it. */
  status(i: number): ArtefactRecord['status'] {
    const more = this.#rest.get(i);
    if (more && 'status' in more) return more.status as ArtefactRecord['status'];
    return this.#str(this.#cols.status[i] as number, undefined) as ArtefactRecord['status'];
  }

  /** Record `i` made whole (a new object each call). */
  record(i: number): ArtefactRecord {
    const c = this.#cols;
    const hash = this.#hash[i];
    const path = this.#path[i];
    const st = this.#str(c.status[i] as number, undefined);
    const sha = this.#str(c.sha256[i] as number, hash);
    const up = this.#str(c.updated[i] as number, undefined);
    const cut = this.#str(c.cutoff[i] as number, hash);
    const p = this.#str(c.producer[i] as number, this.#producer[i]);
    const b = this.#str(c.buildId[i] as number, undefined);
    const pods = this.#lists[c.pods[i] as number];
    const sz = this.#size[i];
    // The usual records made whole in one literal, their fields in the order the general way
    // adds them: a field added to a literal's object goes to a second object (its out-of-object
    // properties).
    let rec: Record<string, unknown>;
    if (cut !== undefined && p !== undefined && b !== undefined)
      rec = {
        path,
        status: st,
        sha256: sha,
        size: sz,
        pods,
        updated: up,
        cutoff: cut,
        producer: p,
        buildId: b,
      };
    else if (cut !== undefined && p === undefined && b === undefined)
      rec = { path, status: st, sha256: sha, size: sz, pods, updated: up, cutoff: cut };
    else {
      rec = { path, status: st, sha256: sha, size: sz, pods, updated: up };
      if (cut !== undefined) rec.cutoff = cut;
      if (p !== undefined) rec.producer = p;
      if (b !== undefined) rec.buildId = b;
    }
    const pod = this.#str(c.writtenPod[i] as number, undefined);
    const mtimeNs = this.#str(c.writtenMtime[i] as number, undefined);
    if (pod !== undefined) rec.written = { pod, mtimeNs };
    const more = this.#rest.get(i);
    if (more) Object.assign(rec, more);
    return rec as unknown as ArtefactRecord;
  }

  /** A string field's value from its code (checked by the constructor). */
  #str(c: number, graph: string | undefined): string | null | undefined {
    if (c === ABSENT) return undefined;
    if (c === NULL) return null;
    if (c === FROM_GRAPH) return graph;
    return this.#strings[c - STRING];
  }
}

/**
 * A column as runs: pairs of (step, count), each value the one before plus the step (the first
 * after 0), `count` times. Values that repeat are one run, and so are values that go up by one
 * (path ids, the codes of strings first met in turn); at worst, twice as many numbers.
 */
export function runsOf(values: readonly number[]): number[] {
  const runs: number[] = [];
  let prev = 0;
  let step = Number.NaN;
  let count = 0;
  for (const v of values) {
    if (v - prev === step) count++;
    else {
      if (count > 0) runs.push(step, count);
      step = v - prev;
      count = 1;
    }
    prev = v;
  }
  if (count > 0) runs.push(step, count);
  return runs;
}

/** A column's values from its runs, checked to be exactly `n` integers. */
function decodeRuns(runs: unknown[], n: number, what: string): Int32Array {
  let total = 0;
  for (let i = 0; i < runs.length; i += 2) {
    const step = runs[i];
    const count = runs[i + 1];
    if (!Number.isInteger(step) || !Number.isInteger(count) || (count as number) < 1)
      throw new Unfit(`snapshot record column ${what}: run ${i / 2} is not one`);
    total += count as number;
  }
  if (total !== n) throw new Unfit(`snapshot record column ${what} has ${total} of ${n} values`);
  const out = new Int32Array(n);
  let value = 0;
  let at = 0;
  for (let i = 0; i < runs.length; i += 2) {
    const step = runs[i] as number;
    for (let k = runs[i + 1] as number; k > 0; k--) {
      value += step;
      out[at++] = value;
    }
  }
  return out;
}
