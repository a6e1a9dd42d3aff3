/**
 * Pairs each item with the result a worker returned for it, in order. The pool answers every
 * request, so a length mismatch is a bug: it throws rather than pair an item with undefined.
 */
export function zip<A, B>(items: readonly A[], results: readonly B[]): Array<[A, B]> {
  const mismatch = () => new RangeError(`${results.length} results for ${items.length} requests`);
  if (items.length !== results.length) throw mismatch();
  const rest = results.values();
  return items.map((item) => {
    const r = rest.next();
    if (r.done) throw mismatch();
    return [item, r.value];
  });
}
