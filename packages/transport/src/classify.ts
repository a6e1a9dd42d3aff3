import { TRANSIENT_ERRNO } from '@computepods/protocol';
import { TransportError, type TransportErrorCode } from './errors.js';

/**
 * Turns what ssh2 or the socket threw while connecting into a TransportError: refused,
 * reset and timed-out connections may succeed later; auth and protocol failures will not.
 */
export function classifyConnectError(err: unknown, endpoint: string): TransportError {
  if (err instanceof TransportError) return err;
  const e = err as NodeJS.ErrnoException & { level?: string };
  const msg = e?.message ?? String(err);
  const make = (code: TransportErrorCode, text: string, retryable: boolean) =>
    new TransportError(code, `${endpoint}: ${text}`, { cause: err, retryable, endpoint });
  if (e?.code === 'ECONNREFUSED') {
    return make(
      'TRANSPORT_CONNECTION_REFUSED',
      'connection refused: is sshd running and listening on that port?',
      true,
    );
  }
  if (e?.code === 'ENOTFOUND') return make('TRANSPORT_DNS', `host not found (${msg})`, false);
  // Any other errno isRetryable counts as transient: the network or the peer was busy or gone.
  if (e?.code && TRANSIENT_ERRNO.has(e.code)) {
    return make('TRANSPORT_CONNECTION_LOST', `network error ${e.code}: ${msg}`, true);
  }
  switch (e?.level) {
    case 'client-timeout':
      return make(
        'TRANSPORT_CONNECT_TIMEOUT',
        `no SSH handshake within the connect timeout (${msg}): host down, firewalled, or overloaded`,
        true,
      );
    case 'client-authentication':
      return make(
        'TRANSPORT_AUTH_FAILED',
        `authentication failed (${msg}): is the public key in the user's ~/.ssh/authorized_keys?`,
        false,
      );
    case 'client-dns':
      return make('TRANSPORT_DNS', `host not found (${msg})`, false);
    case 'client-socket':
      return make('TRANSPORT_CONNECTION_LOST', `socket error: ${msg}`, true);
    case 'client-ssh':
      // A server disconnect during setup (MaxStartups, restart) is usually transient.
      return make('TRANSPORT_CONNECTION_LOST', `server disconnected: ${msg}`, true);
    default:
      return make('TRANSPORT_PROTOCOL', `SSH handshake failed: ${msg}`, false);
  }
}

/** A failure to open a channel on a live connection: the command never started, so retry. */
export function channelError(err: unknown, endpoint: string): TransportError {
  const msg = (err as Error)?.message ?? String(err);
  return new TransportError(
    'TRANSPORT_CHANNEL_FAILED',
    `${endpoint}: could not open a channel: ${msg}`,
    {
      cause: err,
      retryable: true,
      endpoint,
    },
  );
}
