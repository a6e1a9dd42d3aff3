type Disposer = AsyncDisposable | Disposable;

async function dispose(x: unknown): Promise<void> {
  if (x && typeof x === 'object') {
    if (Symbol.asyncDispose in x) await (x as AsyncDisposable)[Symbol.asyncDispose]();
    else if (Symbol.dispose in x) (x as Disposable)[Symbol.dispose]();
  }
}

/**
 * Starts servers at once, as `Promise.all` does, but leaves none running when one fails: every
 * start is let settle, then those that started are disposed and the first failure is thrown.
 * With `Promise.all` a failure returned nothing to the caller while the other starts went on, so
 * the servers they started had no owner to stop them and outlived the test run.
 *
 *   [stack, slurm] = await startTogether([Stack.start('p'), Slurm.start()]);
 */
export async function startTogether<T extends readonly Disposer[]>(
  starts: {
    readonly [K in keyof T]: Promise<T[K]>;
  },
): Promise<T> {
  const settled = await Promise.allSettled(starts);
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (!failed) return settled.map((s) => (s as PromiseFulfilledResult<Disposer>).value) as never;
  await Promise.allSettled(
    settled.map((s) => (s.status === 'fulfilled' ? dispose(s.value) : undefined)),
  );
  throw failed.reason;
}
