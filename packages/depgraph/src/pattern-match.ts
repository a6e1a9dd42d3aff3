import { GraphInvariantError, int32At } from './checked.js';

/**
 * Matches a compiled pattern (literal parts around placeholder slots) against a path in time
 * linear in (slots + literal length) × path length, with the bindings a backtracking regex
 * `^part0(slot0)part1(slot1)…$` would give (each slot as long as the rest still matches).
 *
 * Why not the regex: adjacent placeholders (`{a}{b}{c}{d}{e}{f}.txt`) made V8 try every split of
 * a long segment before failing, which stalled MajorDomo for 13-43 s on one 140-character path.
 * Here a backward pass first marks, for every slot, the positions from which the rest of the
 * pattern can still match; the forward pass then only takes ends so marked, so it never backs
 * up. A placeholder used twice must bind the same text, which the backward pass cannot see: such
 * patterns search with a step budget, and one over the budget counts as no match.
 */

/** Work allowed for a pattern with a repeated placeholder before it is taken as no match. */
const REPEAT_BUDGET = 100_000;

export interface Slots {
  /** Literal text before the first placeholder. */
  readonly head: string;
  /** Each placeholder occurrence, in order, with the literal text after it. */
  readonly slots: readonly Slot[];
  /** A placeholder name occurs in more than one slot. */
  readonly repeated: boolean;
}

export interface Slot {
  readonly name: string;
  /** `{stem}` binds across "/"; any other name within one segment. */
  readonly anyChar: boolean;
  readonly after: string;
}

/** Bindings by slot name when `path` matches, else undefined. */
export function matchSlots(
  { head, slots, repeated }: Slots,
  path: string,
): Record<string, string> | undefined {
  const n = path.length;
  const k = slots.length;
  const tail = slots.at(-1)?.after ?? '';
  if (n < head.length + tail.length + k) return undefined;
  if (!path.startsWith(head) || !path.endsWith(tail)) return undefined;
  // slash[i]: index of the first "/" at or after i (n when none): a segment slot ending at e
  // from s is valid iff slash[s] >= e.
  const slash = new Int32Array(n + 1);
  slash[n] = n;
  for (let i = n - 1; i >= 0; i--)
    slash[i] = path.charCodeAt(i) === 47 ? i : int32At(slash, i + 1, 'path position');
  // can[j][p]: slots j.. (each followed by its literal part) match path[p..] to its end.
  const can = new Array<Uint8Array>(k + 1);
  let next = new Uint8Array(n + 1);
  next[n] = 1;
  can[k] = next;
  for (let j = k - 1; j >= 0; j--) {
    const { anyChar, after } = slotAt(slots, j);
    const row = new Uint8Array(n + 1);
    // Sweep right to left keeping the nearest usable end (its literal follows there and the
    // rest matches after it). A slot starting at p needs an end e > p, and a segment slot no "/"
    // in path[p..e): when the nearest end fails that, every farther one does too.
    let nearest = -1;
    for (let p = n; p >= 0; p--) {
      if (p < n && nearest >= 0 && (anyChar || int32At(slash, p, 'path position') >= nearest))
        row[p] = 1;
      if (next[p + after.length] && path.startsWith(after, p)) nearest = p;
    }
    can[j] = row;
    next = row;
  }
  if (!next[head.length]) return undefined;
  return repeated
    ? searchRepeated(head, slots, slash, can, path)
    : takeGreedy(head, slots, slash, can, path);
}

/** Distinct names: every marked choice leads to a match, so the longest marked end is taken. */
function takeGreedy(
  head: string,
  slots: readonly Slot[],
  slash: Int32Array,
  can: readonly Uint8Array[],
  path: string,
): Record<string, string> {
  const n = path.length;
  const out: Record<string, string> = {};
  let p = head.length;
  for (let j = 0; j < slots.length; j++) {
    const { name, anyChar, after } = slotAt(slots, j);
    const next = rowAt(can, j + 1);
    const limit = anyChar ? n : int32At(slash, p, 'path position');
    let end = -1;
    for (let e = Math.min(limit, n - after.length); e > p; e--)
      if (next[e + after.length] && path.startsWith(after, e)) {
        end = e;
        break;
      }
    out[name] = path.slice(p, end);
    p = end + after.length;
  }
  return out;
}

/** A repeated name: depth-first, longest first, pruned by `can`, within REPEAT_BUDGET steps. */
function searchRepeated(
  head: string,
  slots: readonly Slot[],
  slash: Int32Array,
  can: readonly Uint8Array[],
  path: string,
): Record<string, string> | undefined {
  const n = path.length;
  const bound: Record<string, string> = {};
  let steps = 0;
  const go = (j: number, p: number): boolean => {
    if (++steps > REPEAT_BUDGET) return false;
    const slot = slots[j];
    if (slot === undefined) return p === n;
    const { name, anyChar, after } = slot;
    const next = rowAt(can, j + 1);
    const fixed = bound[name];
    if (fixed !== undefined) {
      const e = p + fixed.length;
      return (
        path.startsWith(fixed, p) &&
        path.startsWith(after, e) &&
        next[e + after.length] === 1 &&
        go(j + 1, e + after.length)
      );
    }
    const limit = anyChar ? n : int32At(slash, p, 'path position');
    for (let e = Math.min(limit, n - after.length); e > p; e--) {
      if (!next[e + after.length] || !path.startsWith(after, e)) continue;
      bound[name] = path.slice(p, e);
      if (go(j + 1, e + after.length)) return true;
      if (steps > REPEAT_BUDGET) break;
    }
    delete bound[name];
    return false;
  };
  return go(0, head.length) ? { ...bound } : undefined;
}

function slotAt(slots: readonly Slot[], j: number): Slot {
  const slot = slots[j];
  if (slot === undefined) throw new GraphInvariantError('pattern slot', j);
  return slot;
}

function rowAt(can: readonly Uint8Array[], j: number): Uint8Array {
  const row = can[j];
  if (row === undefined) throw new GraphInvariantError('match row', j);
  return row;
}
