/**
 * Polls `cond` until it holds, or throws naming `what` after `timeoutMs` (with `diagnostics()`
 * appended, e.g. the tail of a server's output). For tests: waits on behaviour, never on time.
 */
export async function until(
  cond: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 20_000,
  diagnostics?: () => string,
): Promise<void> {
  const end = performance.now() + timeoutMs;
  while (!(await cond())) {
    if (performance.now() > end) {
      const more = diagnostics?.();
      throw new Error(`timed out waiting for ${what}${more ? `\n${more}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Polls `get` until it gives a value (anything but undefined) and returns it, or throws naming
 * `what` after `timeoutMs`. For tests that wait for a request, a record or a snapshot to appear.
 */
export async function untilDefined<T>(
  what: string,
  get: () => T | undefined | Promise<T | undefined>,
  timeoutMs = 30_000,
): Promise<T> {
  const end = performance.now() + timeoutMs;
  for (;;) {
    const v = await get();
    if (v !== undefined) return v;
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
