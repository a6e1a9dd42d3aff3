/**
 * Whether trying the same call again can help: the one rule every retry decision uses (a bus
 * publish, a consumer's redelivery, an executor's backoff). Decided by the error's class and
 * code, never by its message text:
 *
 * 1. An error that says so: a `CpError`, or any error carrying a boolean `retryable` (one made
 *    by another copy of this package, or by a caller that knows).
 * 2. A validation error (zod): the same input fails the same way; an abort was asked for.
 *    Neither is retryable.
 * 3. A Node system error: retryable when its errno is transient (a connection reset, refused
 *    or timed out, a busy resource), not otherwise (ENOENT, EACCES ... repeat on every try).
 * 4. A nats.js error, by its class name (set once per class, and the same in every copy of the
 *    library): a timeout, no responders, a lost or refused connection are retryable, a JetStream
 *    API or status error only with status 503 (the JetStream system was not ready), "JetStream not
 *    enabled" only when it was no responders (a clustered stream between leaders); a closed or
 *    draining connection, a permission or auth refusal, an invalid argument are not. A request
 *    error is what its cause is.
 * 5. Anything else (an error nobody classified) is retryable: a consumer redelivers it up to its
 *    max deliveries and a backoff loop up to its attempts, so an unforeseen transient failure
 *    loses no work; a failure that is known to repeat must say so (1).
 */
export function isRetryable(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return true;
  const e = err as { retryable?: unknown; code?: unknown; name?: unknown; cause?: unknown };
  if (typeof e.retryable === 'boolean') return e.retryable;
  if (e.name === 'ZodError' || e.name === 'AbortError') return false;
  if (isSystemError(e)) return TRANSIENT_ERRNO.has(e.code);
  const name = typeof e.name === 'string' ? e.name : '';
  if (NATS_TRANSIENT.has(name)) return true;
  if (name === 'RequestError') return e.cause === undefined || isRetryable(e.cause);
  if (name === 'JetStreamApiError') return (err as { status?: unknown }).status === 503;
  if (name === 'JetStreamStatusError') return e.code === 503;
  // nats.js names a JetStream publish or API request that met no responders "not enabled"; in
  // a cluster that is a stream (or the meta leader) between leaders, for seconds. An account
  // the server says has no JetStream (API code 10039, not a RequestError) stays final.
  if (name === 'JetStreamNotEnabled') {
    const cause = e.cause as { name?: unknown } | undefined;
    return cause?.name === 'RequestError' && isRetryable(cause);
  }
  if (NATS_FINAL.has(name)) return false;
  return true;
}

/** errno codes after which the same call may succeed: the network or the peer was busy or gone. */
export const TRANSIENT_ERRNO: ReadonlySet<string> = new Set([
  'EAGAIN',
  'EAI_AGAIN',
  'EBUSY',
  'ECONNABORTED',
  'ECONNREFUSED',
  'ECONNRESET',
  'EHOSTDOWN',
  'EHOSTUNREACH',
  'ENETDOWN',
  'ENETRESET',
  'ENETUNREACH',
  'EPIPE',
  'ETIMEDOUT',
]);

/** A Node system error: an errno `code` (E…) with the syscall or errno number Node sets beside it. */
function isSystemError(e: {
  code?: unknown;
  errno?: unknown;
  syscall?: unknown;
}): e is { code: string } {
  return (
    typeof e.code === 'string' &&
    /^E[A-Z0-9_]+$/.test(e.code) &&
    (typeof e.errno === 'number' || typeof e.syscall === 'string')
  );
}

/** nats.js classes of a failure the next try may not meet (the server restarts, a peer starts). */
const NATS_TRANSIENT = new Set(['TimeoutError', 'NoResponders', 'ConnectionError']);
/** nats.js classes of a failure that repeats: the connection is gone for good, or we may not. */
const NATS_FINAL = new Set([
  'AuthorizationError',
  'ClosedConnectionError',
  'ConsumerNotFoundError',
  'DrainingConnectionError',
  'InvalidArgumentError',
  'InvalidNameError',
  'InvalidOperationError',
  'InvalidSubjectError',
  'JetStreamError',
  'JetStreamNotEnabled',
  'PermissionViolationError',
  'ProtocolError',
  'StreamNotFoundError',
  'UserAuthenticationExpiredError',
]);
