/** The auth directory is missing, unreadable or half-made: say which file and what to run. */
export class AuthStoreError extends Error {
  readonly code = 'CP_AUTH_STORE';
  readonly retryable = false;
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'AuthStoreError';
  }
}

/** The NATS server refused an account JWT pushed to its resolver. */
export class AccountPushError extends Error {
  readonly code = 'CP_ACCOUNT_PUSH';
  readonly retryable = true;
  constructor(
    readonly account: string,
    reason: string,
    options?: ErrorOptions,
  ) {
    super(
      `the NATS server did not take the account JWT of ${account}: ${reason}; check that it runs in operator mode with this auth dir's operator (its config comes from serverConfig())`,
      options,
    );
    this.name = 'AccountPushError';
  }
}
