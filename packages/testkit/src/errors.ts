/** A server binary the test kit needs is not installed. Not retryable: install it first. */
export class BinaryMissingError extends Error {
  readonly code = 'TESTKIT_BINARY_MISSING';
  readonly retryable = false;
  constructor(binary: string, hint: string, options?: ErrorOptions) {
    super(`${binary} not found on PATH: ${hint}`, options);
    this.name = 'BinaryMissingError';
  }
}

/** A server started but did not become ready in time, or exited early. */
export class ServerStartError extends Error {
  readonly code = 'TESTKIT_SERVER_START';
  readonly retryable = true;
  constructor(what: string, detail: string, options?: ErrorOptions) {
    super(`${what} did not start: ${detail}`, options);
    this.name = 'ServerStartError';
  }
}
