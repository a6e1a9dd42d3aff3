import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { AuthorizationError, type NatsConnection, TimeoutError } from '@nats-io/transport-node';
import { NatsAuthError, NatsCredsError, NatsUnavailableError } from './errors.js';
import type { Logger } from './logger.js';
import { credsSigner } from './nkey-sign.js';
import { connectTurnBatched } from './turn-batched-transport.js';

export interface ConnectOptions {
  readonly servers: string;
  readonly name: string;
  readonly logger: Logger;
  /** A NATS credentials file (JWT + NKey seed), as `nats --creds` takes. */
  readonly credsFile?: string;
  /**
   * TLS to the server (a deployment that leaves loopback): the CA that signed the server's
   * certificate, and a client certificate and key where the server asks for one.
   */
  readonly tls?: {
    readonly caFile?: string;
    readonly certFile?: string;
    readonly keyFile?: string;
  };
  /**
   * false: a request's error is made when it fails, not when it is sent. nats.js builds two
   * Error objects (stack traces) per request to say where a failed one came from, which costs
   * a hot request path (the runner's KV writes) about a tenth of its CPU. Default true.
   */
  readonly asyncTraces?: boolean;
  /**
   * Give up after this long when no server answers (refused, unresolvable); default: keep trying
   * until the signal aborts. A server that let the attempt time out is there but slow (a loaded
   * machine): it is waited for up to `slowGiveUpAfterMs`.
   */
  readonly giveUpAfterMs?: number;
  /** With giveUpAfterMs: how long a slow server is waited for; default max(10 s, giveUpAfterMs). */
  readonly slowGiveUpAfterMs?: number;
  readonly signal?: AbortSignal;
}

/**
 * Connects with exponential backoff (0.2 s doubling to 5 s) and one clear log line per attempt
 * instead of a crash loop with a stack trace. Once connected, the client reconnects forever.
 */
export async function connectWithBackoff(options: ConnectOptions): Promise<NatsConnection> {
  const { servers, name, logger } = options;
  const started = Date.now();
  let delay = 200;
  // Read once, before any attempt: a missing file is a mistake to report, not to retry.
  let creds: Uint8Array | undefined;
  if (options.credsFile) {
    try {
      creds = readFileSync(options.credsFile);
    } catch (err) {
      throw new NatsCredsError(options.credsFile, { cause: err });
    }
  }
  const inbox = creds ? inboxOf(creds) : undefined;
  // Node's Ed25519, not nats.js's JavaScript one (nkey-sign.ts); a file that holds no seed is
  // reported (NatsCredsError), not retried.
  const authenticator =
    creds && options.credsFile ? credsSigner(creds, options.credsFile) : undefined;
  for (let attempt = 1; ; attempt++) {
    try {
      // One socket write per event-loop turn, not per microtask batch (turn-batched-transport.ts).
      const nc = await connectTurnBatched({
        servers: servers.split(','),
        name,
        maxReconnectAttempts: -1,
        reconnectTimeWait: 500,
        timeout: 2_000,
        pingInterval: 10_000,
        ...(authenticator ? { authenticator } : {}),
        ...(inbox ? { inboxPrefix: inbox } : {}),
        ...(options.tls ? { tls: { ...options.tls } } : {}),
        ...(options.asyncTraces === false ? { noAsyncTraces: true } : {}),
      });
      if (attempt > 1) logger.info({ servers, attempt }, 'connected to NATS');
      return nc;
    } catch (err) {
      // Retrying the same credentials cannot help: say which and what to do.
      if (err instanceof AuthorizationError)
        throw new NatsAuthError(servers, options.credsFile, { cause: err });
      const unavailable = new NatsUnavailableError(servers, { cause: err });
      if (options.signal?.aborted || pastPatience(options, Date.now() - started, err)) {
        throw unavailable;
      }
      logger.warn(
        { servers, attempt, retryInMs: delay, cause: (err as Error).message },
        unavailable.message,
      );
      await sleep(delay, undefined, { signal: options.signal }).catch(() => undefined);
      if (options.signal?.aborted) throw unavailable; // stopped while waiting: no more tries
      delay = Math.min(delay * 2, 5_000);
    }
  }
}

/**
 * Whether to stop trying after `elapsedMs`, the last attempt having failed with `err`. nats.js
 * answers TimeoutError when its connect did not complete in time (under load, a server that is
 * there may take longer than 2 s to answer), and another error when nothing answered at all.
 */
function pastPatience(options: ConnectOptions, elapsedMs: number, err: unknown): boolean {
  const { giveUpAfterMs } = options;
  if (giveUpAfterMs === undefined) return false;
  if (!(err instanceof TimeoutError)) return elapsedMs >= giveUpAfterMs;
  return elapsedMs >= (options.slowGiveUpAfterMs ?? Math.max(10_000, giveUpAfterMs));
}

/**
 * The inbox prefix a credential may subscribe to: `_INBOX.<user name>` (see the auth package's
 * roles), so replies meant for one user cannot be read by another of the same project. Read
 * from the user JWT's `name` claim; undefined for credentials not made by ComputePods.
 */
export function inboxOf(creds: Uint8Array): string | undefined {
  const m = /-----BEGIN NATS USER JWT-----\s*([A-Za-z0-9_.-]+)\s*/.exec(
    Buffer.from(creds).toString('utf8'),
  );
  const payload = m?.[1]?.split('.')[1];
  if (!payload) return undefined;
  try {
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as {
      name?: unknown;
    };
    return typeof claims.name === 'string' && /^[A-Za-z0-9_-]{1,64}$/.test(claims.name)
      ? `_INBOX.${claims.name}`
      : undefined;
  } catch {
    return undefined;
  }
}
