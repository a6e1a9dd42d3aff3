import { CpError, type Issue, issueLine } from '@computepods/protocol';
import { JetStreamApiError } from '@nats-io/jetstream';
import { PermissionViolationError } from '@nats-io/transport-node';

/** NATS could not be reached. Retryable: the bus keeps trying with backoff. */
export class NatsUnavailableError extends CpError {
  constructor(servers: string, options?: ErrorOptions) {
    super(
      'CP_NATS_UNAVAILABLE',
      `cannot reach NATS at ${servers}: start it (\`pnpm cp-up\` starts one) or set NATS_URL to a running server`,
      { ...options, retryable: true },
    );
  }
}

export type { Issue } from '@computepods/protocol';

/** A message or request body failed validation. Never retryable: the same bytes fail again. */
export class MessageInvalidError extends CpError {
  constructor(
    readonly reason: string,
    readonly issues: readonly Issue[] = [],
  ) {
    super(
      'CP_MESSAGE_INVALID',
      issues.length ? `${reason}: ${issues.map(issueLine).join('; ')}` : reason,
    );
  }
  /** The first field named, for replies that must say which field was wrong. */
  get field(): string | undefined {
    return this.issues[0]?.path;
  }
}

/**
 * A request was answered with an error by the remote service. Its code is kept as the remote
 * sent it (an ErrorCode of the remote's version); only CP_UNAVAILABLE is worth a retry.
 */
export class RemoteError extends CpError<string> {
  constructor(
    code: string,
    message: string,
    readonly field?: string,
  ) {
    super(code, message, { retryable: code === 'CP_UNAVAILABLE' });
  }
}

/** Every retry decision of the bus (publish, redelivery) is protocol's one rule. */
export { isRetryable } from '@computepods/protocol';

/**
 * A stream, bucket or consumer a service needs does not exist, and its credentials (rightly)
 * may not create it: the project was not provisioned.
 */
export class ProvisioningMissingError extends CpError {
  constructor(what: string, options?: ErrorOptions) {
    super(
      'CP_PROVISIONING_MISSING',
      `${what} does not exist and this service's credentials may not create it: provision the project first (\`cpctrl project create\` as the lab admin, or \`up\`, which does it)`,
      options,
    );
  }
}

/**
 * The server refused this connection's credentials for a subject. A request carries it as the
 * cause of a RequestError, a publish or subscription as itself: walk the causes.
 */
export function isPermissionDenied(err: unknown): boolean {
  for (let e = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++)
    if (e instanceof PermissionViolationError) return true;
  return false;
}

/** JetStream's codes for "this account's storage is used up" (account limits, server storage). */
const QUOTA_CODES = new Set([10002, 10047]);

/**
 * A project (its NATS account) is over its JetStream storage quota: nothing more is stored for
 * it until old data expires or an admin raises the quota. Other projects go on.
 */
export class StorageQuotaError extends CpError {
  constructor(
    readonly project: string,
    readonly subject: string,
    options?: ErrorOptions,
  ) {
    super(
      'CP_STORAGE_QUOTA',
      `project "${project}" is over its JetStream storage quota: ${subject} was not stored; an admin raises the quota (\`cpctrl project update ${project} --storage-quota BYTES\`) or old events expire`,
      options,
    );
  }
}

export function isQuotaExceeded(err: unknown): boolean {
  return err instanceof JetStreamApiError && QUOTA_CODES.has(err.code);
}

/** JetStream's API codes for a refused expected-last-sequence check (nats.js JetStreamApiCodes). */
const WRONG_LAST_CODES = new Set<number>([10071, 10164]);

/**
 * A publish that expected a subject's last sequence found another there: someone else wrote the
 * subject first (a KV create of a key that exists, an update from a stale revision). Decided by
 * nats.js's error class name and the API code, not the text.
 */
export function isWrongLastSequence(err: unknown): boolean {
  const e = err as { name?: unknown; code?: unknown } | null;
  return e?.name === 'JetStreamApiError' && WRONG_LAST_CODES.has(e.code as number);
}

/** The server refused who we are: no credentials, or ones it does not trust (or revoked). */
export class NatsAuthError extends CpError {
  constructor(servers: string, credsFile: string | undefined, options?: ErrorOptions) {
    super(
      'CP_NATS_AUTH',
      credsFile
        ? `NATS at ${servers} refused the credentials in ${credsFile}: they are not for this server's operator, or were revoked; ask your lab admin for new ones`
        : `NATS at ${servers} needs credentials: set NATS_CREDS (or --creds) to the creds file your lab admin gave you (\`up\` writes the admin's into <state>/auth/creds)`,
      options,
    );
  }
}

/** The credentials file given cannot be read: a mistake to report, not to retry. */
export class NatsCredsError extends CpError {
  constructor(credsFile: string, options: ErrorOptions & { cause: unknown }) {
    super(
      'CP_NATS_CREDS',
      `cannot read NATS credentials file ${credsFile}: ${(options.cause as Error)?.message ?? options.cause}; fix the path or drop the creds option`,
      options,
    );
  }
}

/** JetStream's "stream not found" (10059): a bucket or stream this account does not have. */
export function isStreamMissing(err: unknown): boolean {
  for (let e = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++)
    if (e instanceof JetStreamApiError && e.code === 10059) return true;
  return false;
}
