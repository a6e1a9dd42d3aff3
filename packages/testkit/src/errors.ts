import { CpError } from '@computepods/protocol';

/** A server binary the test kit needs is not installed. Not retryable: install it first. */
export class BinaryMissingError extends CpError {
  constructor(binary: string, hint: string, options?: ErrorOptions) {
    super('TESTKIT_BINARY_MISSING', `${binary} not found on PATH: ${hint}`, options);
  }
}

/** A server started but did not become ready in time, or exited early. */
export class ServerStartError extends CpError {
  constructor(what: string, detail: string, options?: ErrorOptions) {
    super('TESTKIT_SERVER_START', `${what} did not start: ${detail}`, {
      ...options,
      retryable: true,
    });
  }
}
