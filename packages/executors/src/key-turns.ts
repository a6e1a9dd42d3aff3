/**
 * Runs `fn` once every earlier call for `key` has settled (each in its turn, whatever the one
 * before did), and forgets the key once its last turn is over. `chains` holds each key's last
 * turn; one map per set of keys.
 */
export function inTurn<T>(
  chains: Map<string, Promise<unknown>>,
  key: string,
  fn: () => Promise<T>,
): Promise<T> {
  const prev = chains.get(key) ?? Promise.resolve();
  const run = prev.then(fn, fn);
  const tail = run.then(
    () => undefined,
    () => undefined,
  );
  chains.set(key, tail);
  void tail.then(() => {
    if (chains.get(key) === tail) chains.delete(key);
  });
  return run;
}
