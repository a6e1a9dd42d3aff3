import pMap from 'p-map';

/**
 * p-map for a build's handful of paths: when they fit `concurrency` they all start at once
 * (Promise.all, which is what p-map does with them, less its scheduler), else p-map. A compile's
 * build maps a few paths three times (its checks, inputs and outputs), and p-map's bookkeeping
 * cost ~20-30 us a call in the chef's mostly unoptimised code against ~1-10 us (pnpm bench
 * cbuild, #15). Rejects with the first rejection, as p-map does (stopOnError).
 */
export function mapFew<T, R>(
  items: Iterable<T>,
  fn: (item: T, index: number) => R | Promise<R>,
  concurrency: number,
): Promise<Awaited<R>[]> {
  const list = Array.isArray(items) ? (items as T[]) : [...items];
  if (list.length > concurrency) return pMap(list, fn, { concurrency }) as Promise<Awaited<R>[]>;
  try {
    return Promise.all(list.map(fn));
  } catch (err) {
    return Promise.reject(err);
  }
}
