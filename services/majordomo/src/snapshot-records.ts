import type { DependencyManager } from '@computepods/depgraph';
import type { ArtefactRecord } from '@computepods/protocol';
import { z } from 'zod';
import type { ArtefactManager } from './artefacts.js';

/**
 * How a snapshot stores its artefact records (snapshot-store.ts, format 6): by column, one value
 * per record in each, the strings they repeat (states, times, build ids, pods, hashes the graph
 * does not hold) once in `strings`. A record whose path the graph holds leaves out what the
 * graph holds already: its path (the graph's path id in `at`), and its sha256, cutoff and
 * producer where they equal the graph's hash and producer (code FROM_GRAPH).
 *
 * Format 5 stored each record as a JSON object: at 100k artefacts its JSON.parse (~75 ms), the
 * strings it made and shareStrings() then replaced (~15 ms), the fields deleted and added again
 * (~17 ms) and their garbage (scavenges where everything survives) were a fifth of a restart's
 * CPU (bench/scale/restarts.ts' profile). Columns parse as arrays of small integers, and a record
 * is made once, in one go, its strings shared from the start.
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
  strings: z.array(z.string()),
  /** The pods lists, each as indices into `strings`. */
  podLists: z.array(z.array(z.number().int().nonnegative())),
  /** The graph's path id of each record; -1: a path the graph does not hold (its path in rest). */
  at: Column,
  status: Column,
  sha256: Column,
  cutoff: Column,
  producer: Column,
  /** The size as it is (a number or null). */
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

/** The records as a snapshot stores them, in the graph's path order, then those it lacks. */
export function compactRecords(
  dm: DependencyManager,
  artefacts: Pick<ArtefactManager, 'get' | 'records' | 'size'>,
): StoredRecords {
  const out = new Columns();
  const paths = dm.pathsInOrder();
  let n = 0;
  for (const [id, path] of paths.entries()) {
    const rec = artefacts.get(path);
    if (!rec) continue;
    out.add(rec, id, dm.stringsAt(id));
    n++;
  }
  if (n < artefacts.size)
    for (const rec of artefacts.records()) if (!dm.strings(rec.path)) out.add(rec, -1, undefined);
  return out.stored();
}

/** Records added a column value at a time. */
class Columns {
  readonly #strings: string[] = [];
  readonly #index = new Map<string, number>();
  readonly #podLists: number[][] = [];
  readonly #podIndex = new Map<string, number>();
  readonly #cols: Omit<StoredRecords, 'strings' | 'podLists' | 'rest'> = {
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
  readonly #rest: [number, Record<string, unknown>][] = [];

  add(
    rec: ArtefactRecord,
    id: number,
    held: { hash: string | undefined; producer: string | undefined } | undefined,
  ): void {
    const c = this.#cols;
    const i = c.at.length;
    const { path, size, pods, written, ...fields } = rec as ArtefactRecord &
      Record<string, unknown>;
    const rest: Record<string, unknown> = {};
    c.at.push(id);
    if (id < 0) rest.path = path;
    const fromGraph: Record<string, string | undefined> = {
      sha256: held?.hash,
      cutoff: held?.hash,
      producer: held?.producer,
    };
    for (const name of CODED) {
      const v = fields[name];
      delete fields[name];
      const graph = fromGraph[name];
      const code = v !== undefined && v !== null && v === graph ? FROM_GRAPH : this.#code(v);
      if (code === undefined) rest[name] = v;
      c[name].push(code ?? ABSENT);
    }
    if (typeof size === 'number' || size === null) c.size.push(size);
    else {
      c.size.push(null);
      rest.size = size;
    }
    const list = this.#podList(pods);
    if (list === undefined) rest.pods = pods;
    c.pods.push(list ?? 0);
    const w = written as Record<string, unknown> | undefined;
    const pod = w && Object.keys(w).length === 2 ? this.#code(w.pod) : undefined;
    const mtime = w && Object.keys(w).length === 2 ? this.#code(w.mtimeNs) : undefined;
    if (pod !== undefined && pod >= STRING && mtime !== undefined && mtime >= STRING) {
      c.writtenPod.push(pod);
      c.writtenMtime.push(mtime);
    } else {
      c.writtenPod.push(ABSENT);
      c.writtenMtime.push(ABSENT);
      if (written !== undefined) rest.written = written;
    }
    for (const [k, v] of Object.entries(fields)) if (v !== undefined) rest[k] = v;
    if (Object.keys(rest).length > 0) this.#rest.push([i, rest]);
  }

  stored(): StoredRecords {
    return { strings: this.#strings, podLists: this.#podLists, ...this.#cols, rest: this.#rest };
  }

  /** The code of a string field's value; undefined: a value no code stands for. */
  #code(v: unknown): number | undefined {
    if (v === undefined) return ABSENT;
    if (v === null) return NULL;
    if (typeof v !== 'string') return undefined;
    return STRING + this.#stringIndex(v);
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

/** Raised inside expandRecords for why the records do not fit (caught there, returned). */
class Unfit extends Error {}

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
  const { strings, at, size, rest } = stored;
  const n = at.length;
  for (const name of [...CODED, 'size', 'pods', 'writtenPod', 'writtenMtime'] as const)
    if (stored[name].length !== n)
      throw new Unfit(`snapshot record column ${name} has ${stored[name].length} of ${n} values`);
  const lists = stored.podLists.map((l) =>
    Object.freeze(
      l.map((s) => {
        const p = strings[s];
        if (p === undefined) throw new Unfit(`a snapshot pods list names no string (${s})`);
        return p;
      }),
    ),
  );
  const str = (col: unknown[], i: number, graph: string | undefined, what: string) => {
    const c = col[i];
    if (c === ABSENT) return undefined;
    if (c === NULL) return null;
    if (c === FROM_GRAPH) {
      if (graph === undefined) throw new Unfit(`snapshot record ${i}: its graph has no ${what}`);
      return graph;
    }
    const s = typeof c === 'number' ? strings[c - STRING] : undefined;
    if (s === undefined) throw new Unfit(`snapshot record ${i}: ${what} code ${String(c)}`);
    return s;
  };
  const out = new Array<ArtefactRecord>(n);
  let r = 0;
  for (let i = 0; i < n; i++) {
    const id = at[i];
    let held: { path: string; hash: string | undefined; producer: string | undefined } | undefined;
    if (id !== -1) {
      held = typeof id === 'number' ? dm.stringsAt(id) : undefined;
      if (!held) throw new Unfit(`a snapshot record names no path of its graph (${String(id)})`);
    }
    const pods = lists[stored.pods[i] as number];
    const sz = size[i];
    if (!pods) throw new Unfit(`snapshot record ${i}: pods list ${String(stored.pods[i])}`);
    if (typeof sz !== 'number' && sz !== null) throw new Unfit(`snapshot record ${i}: size`);
    const rec: Record<string, unknown> = {
      path: held?.path,
      status: str(stored.status, i, undefined, 'status'),
      sha256: str(stored.sha256, i, held?.hash, 'hash'),
      size: sz,
      pods,
      updated: str(stored.updated, i, undefined, 'time'),
    };
    const cutoff = str(stored.cutoff, i, held?.hash, 'hash');
    if (cutoff !== undefined) rec.cutoff = cutoff;
    const producer = str(stored.producer, i, held?.producer, 'producer');
    if (producer !== undefined) rec.producer = producer;
    const buildId = str(stored.buildId, i, undefined, 'build id');
    if (buildId !== undefined) rec.buildId = buildId;
    const pod = str(stored.writtenPod, i, undefined, 'pod');
    if (pod !== undefined)
      rec.written = { pod, mtimeNs: str(stored.writtenMtime, i, undefined, 'mtime') };
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
