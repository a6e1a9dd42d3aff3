import type { Trace } from './trace.js';

/** Trace records as a snapshot lays them out (see snapshot.ts), and the strings they name. */
export interface PackedTraces {
  readonly words: Uint32Array;
  readonly strings: readonly string[];
}

export const TRACE_HEAD = 4;

/**
 * Traces by task id. Those restored from a snapshot stay packed (an offset into its words) until
 * first read: a restart reads few of them, and the load-time dirtiness check works on the packed
 * form (snapshot.ts). A Map's interface, so callers do not see the difference.
 */
export class TraceTable {
  private readonly byId = new Map<string, Trace | number>();
  private packed: PackedTraces = { words: new Uint32Array(0), strings: [] };

  get size(): number {
    return this.byId.size;
  }

  get(id: string): Trace | undefined {
    const entry = this.byId.get(id);
    if (typeof entry !== 'number') return entry;
    const trace = unpackTrace(this.packed, entry);
    this.byId.set(id, trace);
    return trace;
  }

  set(id: string, trace: Trace): this {
    this.byId.set(id, trace);
    return this;
  }

  delete(id: string): boolean {
    return this.byId.delete(id);
  }

  keys(): IterableIterator<string> {
    return this.byId.keys();
  }

  *[Symbol.iterator](): IterableIterator<[string, Trace]> {
    for (const id of this.byId.keys()) {
      const trace = this.get(id);
      if (trace) yield [id, trace];
    }
  }

  /**
   * Each trace as it is held, nothing unpacked: a Trace, or the offset of its record in
   * packedRecords() (a snapshot taken of a restored graph copies those records as they are;
   * unpacking them all kept ~30 MB more at 100k artefacts, issue #13).
   */
  held(): IterableIterator<[string, Trace | number]> {
    return this.byId.entries();
  }

  /** The words and strings of the packed records held() gives offsets into. */
  packedRecords(): PackedTraces {
    return this.packed;
  }

  /** Takes the packed records of a snapshot (checked when it was decoded). */
  restorePacked(packed: PackedTraces): void {
    this.packed = packed;
  }

  /** Records that task `id`'s trace is the packed record at `offset`. */
  setPacked(id: string, offset: number): void {
    this.byId.set(id, offset);
  }

  /** Offset of the task's trace while it is still packed. */
  packedOffset(id: string): number | undefined {
    const entry = this.byId.get(id);
    return typeof entry === 'number' ? entry : undefined;
  }
}

/** Words a trace record at `at` takes. */
export function traceRecordWords(words: Uint32Array, at: number): number {
  const ins = words[at + 1] ?? 0;
  const outs = words[at + 2] ?? 0;
  const disc = words[at + 3] ?? 0;
  return TRACE_HEAD + 2 * (ins + outs) + Math.max(disc - 1, 0);
}

function unpackTrace({ words, strings }: PackedTraces, offset: number): Trace {
  const ins = words[offset + 1] ?? 0;
  const outs = words[offset + 2] ?? 0;
  const disc = words[offset + 3] ?? 0;
  let at = offset + TRACE_HEAD;
  const inIds = new Array<number>(ins);
  const inHashes = new Array<string>(ins);
  for (let i = 0; i < ins; i++, at += 2) {
    inIds[i] = words[at] ?? 0;
    inHashes[i] = strings[words[at + 1] ?? 0] ?? '';
  }
  const outIds = new Array<number>(outs);
  const outHashes = new Array<string>(outs);
  for (let i = 0; i < outs; i++, at += 2) {
    outIds[i] = words[at] ?? 0;
    outHashes[i] = strings[words[at + 1] ?? 0] ?? '';
  }
  const discovered = disc > 0 ? numbers(words, at, disc - 1) : undefined;
  return { inIds, inHashes, outIds, outHashes, discovered };
}

const NONE: readonly number[] = Object.freeze([]);

/**
 * `n` words from `at` as a plain array (Array.from over a subarray costs several times more); an
 * empty list is shared (most tasks have no optional inputs).
 */
export function numbers(words: Uint32Array, at: number, n: number): readonly number[] {
  if (n === 0) return NONE;
  const list = new Array<number>(n);
  for (let i = 0; i < n; i++) list[i] = words[at + i] ?? 0;
  return list;
}
