import { TRACE_HEAD } from './trace-table.js';

/** Lists of path ids as tasks hold them: never changed in place, so they may be shared. */
export const NONE: readonly number[] = Object.freeze([]);

/**
 * Concatenation without repeats; lists are usually short, and then a scan beats a Set. The result
 * is sized up front: an array grown by push keeps room for 16 more, and tasks hold several. Three
 * lists named, not a rest parameter (an array made per call), and each scan stops at what was
 * kept: includes() on the array sized up front read every slot, holes too (a restart links
 * 100,000s of tasks: pnpm bench scale).
 */
export function dedupe(a: readonly number[], b: readonly number[], c: readonly number[]): number[] {
  const total = a.length + b.length + c.length;
  if (total > 64) return [...new Set([...a, ...b, ...c])];
  const out = new Array<number>(total);
  let n = keepNew(out, 0, a);
  n = keepNew(out, n, b);
  n = keepNew(out, n, c);
  out.length = n;
  return out;
}

/** Appends to out[0, n) each of `list` not there yet; the new count. */
function keepNew(out: number[], n: number, list: readonly number[]): number {
  for (let i = 0; i < list.length; i++) {
    const p = list[i] as number;
    let j = 0;
    while (j < n && out[j] !== p) j++;
    if (j === n) out[n++] = p;
  }
  return n;
}

/** The list itself when it has no repeats, else it without them. */
export function unique(list: readonly number[]): readonly number[] {
  if (list.length > 64) return new Set(list).size === list.length ? list : dedupe(list, NONE, NONE);
  for (let i = 1; i < list.length; i++) {
    const p = list[i];
    if (p !== undefined && list.lastIndexOf(p, i - 1) >= 0) return dedupe(list, NONE, NONE);
  }
  return list;
}

/**
 * A task's inputs: its required ones themselves when it has no others (most of a restart's
 * tasks without discovered inputs: one array fewer each), else the three lists without repeats.
 */
export function inputsOf(
  required: readonly number[],
  optional: readonly number[],
  discovered: readonly number[],
): readonly number[] {
  if (optional.length === 0 && discovered.length === 0) return unique(required);
  return dedupe(required, optional, discovered);
}

/** The discovered inputs of a task's packed trace (as Graph.resolveDiscovered gives them). */
export function packedDiscovered(
  words: Uint32Array,
  at: number,
  required: readonly number[],
  optional: readonly number[],
): readonly number[] {
  const disc = words[at + 3] ?? 0;
  const ins = words[at + 1] ?? 0;
  const outs = words[at + 2] ?? 0;
  if (disc > 0) {
    const from = at + TRACE_HEAD + 2 * (ins + outs);
    if (disc === 1) return NONE;
    const list = new Array<number>(disc - 1);
    for (let i = 0; i < disc - 1; i++) list[i] = words[from + i] ?? 0;
    return list;
  }
  const found: number[] = [];
  for (let i = 0; i < ins; i++) {
    const p = words[at + TRACE_HEAD + 2 * i] ?? 0;
    if (!required.includes(p) && !optional.includes(p)) found.push(p);
  }
  return found;
}

/**
 * inputsOf(required, optional, packedDiscovered(words, at, …)) without the discovered list: a
 * restart links 10,000s of tasks with a packed trace, and few of them are ever asked for their
 * discovered inputs on their own (Task.discovered makes them then). The same ids in the same
 * order; the required list itself when the trace adds none.
 */
export function packedInputs(
  words: Uint32Array,
  at: number,
  required: readonly number[],
  optional: readonly number[],
): readonly number[] {
  // The discovered ids: after the record's pairs; in a record not yet split (#discovered + 1 is
  // 0), its inputs (every other word after the head), of which those neither required nor
  // optional are the discovered ones (the others are dropped as repeats).
  const ins = words[at + 1] ?? 0;
  const disc = words[at + 3] ?? 0;
  const from = disc > 0 ? at + TRACE_HEAD + 2 * (ins + (words[at + 2] ?? 0)) : at + TRACE_HEAD;
  const count = disc > 0 ? disc - 1 : ins;
  const stride = disc > 0 ? 1 : 2;
  const total = required.length + optional.length + count;
  if (total > 64) {
    const found = new Set([...required, ...optional]);
    const known = found.size;
    for (let i = 0, w = from; i < count; i++, w += stride) found.add(words[w] ?? 0);
    if (found.size === known && optional.length === 0) return unique(required);
    return [...found];
  }
  const out = new Array<number>(total);
  let n = keepNew(out, 0, required);
  n = keepNew(out, n, optional);
  const declared = n;
  for (let i = 0, w = from; i < count; i++, w += stride) {
    const p = words[w] ?? 0;
    let j = 0;
    while (j < n && out[j] !== p) j++;
    if (j === n) out[n++] = p;
  }
  if (n === declared && optional.length === 0) return unique(required);
  out.length = n;
  return out;
}
