/**
 * 64-bit integers kept as (low, high) 32-bit word pairs in a Uint32Array: the stat columns of
 * the scan worker's results and of the stamp file. A read past the end is a bug and throws.
 */

/** The signed 64-bit integer at words `i`, `i + 1` of `w`. */
export function int64At(w: Uint32Array, i: number): bigint {
  const [lo, hi] = wordPair(w, i);
  return (BigInt(hi | 0) << 32n) | BigInt(lo);
}

/** The same value as a double: ns since 1970 lose < 1 µs, for comparisons far coarser. */
export function int64NumberAt(w: Uint32Array, i: number): number {
  const [lo, hi] = wordPair(w, i);
  return (hi | 0) * 4294967296 + lo;
}

function wordPair(w: Uint32Array, i: number): [number, number] {
  const lo = w[i];
  const hi = w[i + 1];
  if (lo === undefined || hi === undefined) {
    throw new RangeError(`no 64-bit value at word ${i} of ${w.length}`);
  }
  return [lo, hi];
}
