import { CpError, type CpErrorOptions, isRetryable } from '@computepods/protocol';

/** Stable codes a caller can switch on; each says whether trying again can help. */
export type TransportErrorCode =
  | 'TRANSPORT_AUTH_FAILED'
  | 'TRANSPORT_CHANGED_WHILE_READ'
  | 'TRANSPORT_CHANNEL_FAILED'
  | 'TRANSPORT_COMMAND_TIMEOUT'
  | 'TRANSPORT_CONNECTION_LOST'
  | 'TRANSPORT_CONNECTION_REFUSED'
  | 'TRANSPORT_CONNECT_TIMEOUT'
  | 'TRANSPORT_DESTINATION_EXISTS'
  | 'TRANSPORT_DNS'
  | 'TRANSPORT_HOST_KEY_MISMATCH'
  | 'TRANSPORT_HOST_KEY_UNKNOWN'
  | 'TRANSPORT_KEY_UNREADABLE'
  | 'TRANSPORT_POOL_CLOSED'
  | 'TRANSPORT_PROTOCOL'
  | 'TRANSPORT_REMOTE_COMMAND_FAILED'
  | 'TRANSPORT_SFTP'
  | 'TRANSPORT_UNSUPPORTED_FILE'
  | 'TRANSPORT_VERIFY_FAILED';

export interface TransportErrorOptions extends CpErrorOptions {
  /** `user@host:port`, when the failure concerns one remote endpoint. */
  readonly endpoint?: string;
}

/** Every failure of this package. `retryable` says whether the same call may succeed later. */
export class TransportError extends CpError<TransportErrorCode> {
  readonly endpoint: string | undefined;
  constructor(code: TransportErrorCode, message: string, options: TransportErrorOptions = {}) {
    super(code, message, options);
    this.endpoint = options.endpoint;
  }
}

/** The server's host key is absent from known_hosts or differs from it. Never retryable. */
export class HostKeyError extends TransportError {
  constructor(
    code: 'TRANSPORT_HOST_KEY_MISMATCH' | 'TRANSPORT_HOST_KEY_UNKNOWN',
    message: string,
    readonly knownHostsPath: string,
    options: TransportErrorOptions = {},
  ) {
    super(code, message, { ...options, retryable: false });
  }
}

/**
 * A path or name would escape its directory or be read by a shell: protocol's one
 * UnsafePathError, with code TRANSPORT_UNSAFE_PATH or TRANSPORT_UNSAFE_NAME. Fix the input.
 */
export { UnsafePathError } from '@computepods/protocol';

/** The local file changed while it was read and sent: its bytes may mix two versions. */
export class ChangedWhileReadError extends TransportError {
  constructor(readonly path: string) {
    super(
      'TRANSPORT_CHANGED_WHILE_READ',
      `${path} changed while it was being sent; send it again`,
      { retryable: true },
    );
  }
}

/** A transferred file's SHA-256 differs from its source; the destination was left untouched. */
export class VerifyError extends TransportError {
  constructor(
    readonly file: string,
    expected: string,
    actual: string,
    options: TransportErrorOptions = {},
  ) {
    super(
      'TRANSPORT_VERIFY_FAILED',
      `SHA-256 of ${file} is ${actual} after transfer, expected ${expected}; the destination was not replaced, retry the transfer`,
      { ...options, retryable: true },
    );
  }
}

/**
 * Whether a transfer tries a file again itself: protocol's isRetryable (a dropped connection or
 * session), but never after a VerifyError. That one is retryable for the caller, who may send
 * the file anew; tried again here it would only compare the same bytes once more.
 */
export function worthRetryingTransfer(err: unknown): boolean {
  return err instanceof TransportError && isRetryable(err) && !(err instanceof VerifyError);
}
