import { CpError } from '@computepods/protocol';

/** The auth directory is missing, unreadable or half-made: say which file and what to run. */
export class AuthStoreError extends CpError {
  constructor(message: string, options?: ErrorOptions) {
    super('CP_AUTH_STORE', message, options);
  }
}

/** The NATS server refused an account JWT pushed to its resolver. */
export class AccountPushError extends CpError {
  constructor(
    readonly account: string,
    reason: string,
    options?: ErrorOptions,
  ) {
    super(
      'CP_ACCOUNT_PUSH',
      `the NATS server did not take the account JWT of ${account}: ${reason}; check that it runs in operator mode with this auth dir's operator (its config comes from serverConfig())`,
      { ...options, retryable: true },
    );
  }
}
