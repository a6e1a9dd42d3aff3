import { CpError } from '@computepods/protocol/errors';

/**
 * Lookups where absence is a bug, not a case to handle: a path id the graph interned, a task
 * index a live task holds, a component the scheduler numbered. They throw an error naming the
 * table and the key instead of going on with `undefined`.
 */

/** The graph's own tables disagree: a bug in depgraph, never bad input (not retryable). */
export class GraphInvariantError extends CpError {
  constructor(what: string, key: number | string) {
    super(
      'DEPGRAPH_INVARIANT',
      `depgraph internal error: no ${what} ${JSON.stringify(key)}; please report this bug`,
    );
  }
}

/**
 * `list[i]`, which the caller's invariants say is set. Not for hot loops: its one element load
 * sees every array type in the package and goes megamorphic; they check inline or use int32At.
 */
export function at<T>(list: ArrayLike<T | undefined>, i: number, what: string): T {
  const v = list[i];
  if (v === undefined) throw new GraphInvariantError(what, i);
  return v;
}

/** `a[i]` of an Int32Array (CSR offsets, components, sizes): a load site that sees only those. */
export function int32At(a: Int32Array, i: number, what: string): number {
  const v = a[i];
  if (v === undefined) throw new GraphInvariantError(what, i);
  return v;
}

/** `map.get(key)`, which the caller's invariants say is set. */
export function got<K extends number | string, V>(map: ReadonlyMap<K, V>, key: K, what: string): V {
  const v = map.get(key);
  if (v === undefined) throw new GraphInvariantError(what, key);
  return v;
}
