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
 * A snapshot's stored records made whole, from the graph loaded beside them (its strings, so
 * records and graph share them), or why they do not fit that graph (then the snapshot is not
 * used). The pods lists are shared frozen (MajorDomo replaces a record's list, never changes one
 * in place).
 */
export function expandRecords(
  dm: DependencyManager,
  stored: StoredRecords,
): ArtefactRecord[] | string {
  try {
    return expand(dm, stored);
  } catch (err) {
    if (err instanceof Unfit) return err.message;
    throw err;
  }
}

function expand(dm: DependencyManager, stored: StoredRecords): ArtefactRecord[] {
  const { strings, count: n, size, rest } = stored;
  if (size.length !== n) throw new Unfit(`snapshot record sizes: ${size.length} of ${n}`);
  const col = (name: (typeof IN_RUNS)[number]) => new Runs(stored[name], n, name);
  const [at, status, sha256, cutoff, producer, updated, buildId, podsAt, writtenPod, writtenMtime] =
    IN_RUNS.map(col) as [Runs, Runs, Runs, Runs, Runs, Runs, Runs, Runs, Runs, Runs];
  const lists = stored.podLists.map((l) =>
    Object.freeze(
      l.map((s) => {
        const p = strings[s];
        if (p === undefined) throw new Unfit(`a snapshot pods list names no string (${s})`);
        return p;
      }),
    ),
  );
  const str = (c: number, i: number, graph: string | undefined, what: string) => {
    if (c === ABSENT) return undefined;
    if (c === NULL) return null;
    if (c === FROM_GRAPH) {
      if (graph === undefined) throw new Unfit(`snapshot record ${i}: its graph has no ${what}`);
      return graph;
    }
    const s = strings[c - STRING];
    if (s === undefined) throw new Unfit(`snapshot record ${i}: ${what} code ${c}`);
    return s;
  };
  const out = new Array<ArtefactRecord>(n);
  // Each record's graph strings, written over for the next (no object per record).
  const graphHeld: PathStrings = { path: '', hash: undefined, producer: undefined };
  let r = 0;
  for (let i = 0; i < n; i++) {
    const id = at.next();
    let held: PathStrings | undefined;
    if (id !== -1) {
      held = dm.stringsAt(id, graphHeld);
      if (!held) throw new Unfit(`a snapshot record names no path of its graph (${id})`);
    }
    const list = podsAt.next();
    const pods = lists[list];
    const sz = size[i];
    if (!pods) throw new Unfit(`snapshot record ${i}: pods list ${list}`);
    if (typeof sz !== 'number' && sz !== null) throw new Unfit(`snapshot record ${i}: size`);
    const path = held?.path;
    const st = str(status.next(), i, undefined, 'status');
    const sha = str(sha256.next(), i, held?.hash, 'hash');
    const up = str(updated.next(), i, undefined, 'time');
    const c = str(cutoff.next(), i, held?.hash, 'hash');
    const p = str(producer.next(), i, held?.producer, 'producer');
    const b = str(buildId.next(), i, undefined, 'build id');
    // The usual records made whole in one literal, their fields in the order the general way
    // adds them: a field added to a literal's object goes to a second object (its out-of-object
    // properties), ~100,000 more for the young generation to copy at a restart.
    let rec: Record<string, unknown>;
    if (c !== undefined && p !== undefined && b !== undefined)
      rec = {
        path,
        status: st,
        sha256: sha,
        size: sz,
        pods,
        updated: up,
        cutoff: c,
        producer: p,
        buildId: b,
      };
    else if (c !== undefined && p === undefined && b === undefined)
      rec = { path, status: st, sha256: sha, size: sz, pods, updated: up, cutoff: c };
    else {
      rec = { path, status: st, sha256: sha, size: sz, pods, updated: up };
      if (c !== undefined) rec.cutoff = c;
      if (p !== undefined) rec.producer = p;
      if (b !== undefined) rec.buildId = b;
    }
    const pod = str(writtenPod.next(), i, undefined, 'pod');
    const mtimeNs = str(writtenMtime.next(), i, undefined, 'mtime');
    if (pod !== undefined) rec.written = { pod, mtimeNs };
    const more = rest[r];
    if (more && more[0] === i) {
      Object.assign(rec, more[1]);
      r++;
    }
    if (typeof rec.path !== 'string') throw new Unfit('a snapshot record has no path');
    out[i] = rec as unknown as ArtefactRecord;
  }
  if (r < rest.length) throw new Unfit(`snapshot record fields for record ${rest[r]?.[0]}`);
  return out;
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

/** A column's values from its runs, in turn; checked to give exactly `n` integers. */
class Runs {
  #at = 0;
  #left = 0;
  #step = 0;
  #value = 0;

  constructor(
    private readonly runs: unknown[],
    n: number,
    what: string,
  ) {
    let total = 0;
    for (let i = 0; i < runs.length; i += 2) {
      const step = runs[i];
      const count = runs[i + 1];
      if (!Number.isInteger(step) || !Number.isInteger(count) || (count as number) < 1)
        throw new Unfit(`snapshot record column ${what}: run ${i / 2} is not one`);
      total += count as number;
    }
    if (total !== n) throw new Unfit(`snapshot record column ${what} has ${total} of ${n} values`);
  }

  next(): number {
    if (this.#left === 0) {
      this.#step = this.runs[this.#at] as number;
      this.#left = this.runs[this.#at + 1] as number;
      this.#at += 2;
    }
    this.#left--;
    this.#value += this.#step;
    return this.#value;
  }
}
