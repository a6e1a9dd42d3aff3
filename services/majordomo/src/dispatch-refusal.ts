/**
 * Why a build request could not be made or sent, when retrying cannot help: a request that
 * fails validation (a field over its limit), a key or subject too long for NATS, a path or
 * name refused. Undefined for anything else (NATS down, say), which the caller lets propagate.
 *
 * A 509-character source path once made a request whose stem broke its limit; the throw went
 * out of the pump, and because the pump runs at start, MajorDomo could never start again.
 */
export function dispatchRefusal(err: unknown): string | undefined {
  const e = err as { retryable?: unknown; code?: unknown; message?: unknown } | undefined;
  if (e?.retryable !== false) return undefined;
  const code = typeof e.code === 'string' ? e.code : 'CP_INVALID';
  return `${code}: the build request cannot be sent: ${String(e.message)}`;
}
