/** Stable codes a caller can switch on; each says whether trying again can help. */
export type TransportErrorCode =
  | 'TRANSPORT_AUTH_FAILED'
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
  | 'TRANSPORT_UNSAFE_NAME'
  | 'TRANSPORT_UNSAFE_PATH'
  | 'TRANSPORT_UNSUPPORTED_FILE'
  | 'TRANSPORT_VERIFY_FAILED';

export interface TransportErrorOptions extends ErrorOptions {
  readonly retryable?: boolean;
  /** `user@host:port`, when the failure concerns one remote endpoint. */
  readonly endpoint?: string;
}

/** Every failure of this package. `retryable` says whether the same call may succeed later. */
export class TransportError extends Error {
  readonly code: TransportErrorCode;
  readonly retryable: boolean;
  readonly endpoint: string | undefined;
  constructor(code: TransportErrorCode, message: string, options: TransportErrorOptions = {}) {
    super(message, options);
    this.name = 'TransportError';
    this.code = code;
    this.retryable = options.retryable ?? false;
    this.endpoint = options.endpoint;
  }
}

/** The server's host key is absent from known_hosts or differs from it. Never retryable. */
export class HostKeyError extends TransportError {
  readonly knownHostsPath: string;
  constructor(
    code: 'TRANSPORT_HOST_KEY_MISMATCH' | 'TRANSPORT_HOST_KEY_UNKNOWN',
    message: string,
    knownHostsPath: string,
    options: TransportErrorOptions = {},
  ) {
    super(code, message, { ...options, retryable: false });
    this.name = 'HostKeyError';
    this.knownHostsPath = knownHostsPath;
  }
}

/** A path or name would escape its directory or be read by a shell. Fix the input. */
export class UnsafePathError extends TransportError {
  readonly path: string;
  constructor(
    code: 'TRANSPORT_UNSAFE_NAME' | 'TRANSPORT_UNSAFE_PATH',
    path: string,
    message: string,
  ) {
    super(code, message, { retryable: false });
    this.name = 'UnsafePathError';
    this.path = path;
  }
}

/** A transferred file's SHA-256 differs from its source; the destination was left untouched. */
export class VerifyError extends TransportError {
  readonly file: string;
  constructor(file: string, expected: string, actual: string, options: TransportErrorOptions = {}) {
    super(
      'TRANSPORT_VERIFY_FAILED',
      `SHA-256 of ${file} is ${actual} after transfer, expected ${expected}; the destination was not replaced, retry the transfer`,
      { ...options, retryable: true },
    );
    this.name = 'VerifyError';
    this.file = file;
  }
}
