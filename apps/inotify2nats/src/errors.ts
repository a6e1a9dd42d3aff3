import { CpError } from '@computepods/protocol';

/** A setting is missing or wrong; the message names the field and where its value came from. */
export class SettingsError extends CpError {
  constructor(
    message: string,
    readonly field?: string,
    options?: ErrorOptions,
  ) {
    super('CP_INOTIFY_SETTINGS', message, options);
  }
}

/**
 * The pod could not be reached or refused us (connection, host key, login). The batch stays
 * pending and is retried with backoff: nothing is lost, the stamps are not committed.
 */
export class PodUnreachableError extends CpError {
  constructor(
    readonly pod: string,
    readonly endpoint: string,
    pending: number,
    /** A command the user can run to see the same failure, e.g. an `ssh` line. */
    check: string,
    options: ErrorOptions & { cause: Error },
  ) {
    super(
      'CP_POD_UNREACHABLE',
      `cannot reach pod ${pod} over SSH at ${endpoint}: ${options.cause.message}; ${pending > 0 ? `${pending} change(s) stay pending and are retried with backoff; ` : ''}check that \`${check}\` works`,
      { ...options, retryable: true },
    );
  }
}

/** Work on the pod failed in a way a retry may fix (verification, a dropped session, ...). */
export class PodSyncError extends CpError {
  constructor(
    readonly pod: string,
    /** What could not be done, e.g. `copy paper/main.tex`. */
    readonly action: string,
    options: ErrorOptions & { cause: Error },
  ) {
    super('CP_POD_SYNC_FAILED', `pod ${pod}: could not ${action}: ${options.cause.message}`, {
      ...options,
      retryable: true,
    });
  }
}

/**
 * A path would leave the watched root or the remote root (a symlink on either side, or a name
 * with `..`). Never retried: the file is left out of the batch and named in an error log line.
 */
export class UnsafeSyncPathError extends CpError {
  constructor(
    readonly path: string,
    reason: string,
  ) {
    super(
      'CP_UNSAFE_SYNC_PATH',
      `refusing to sync ${JSON.stringify(path)}: ${reason}; it was not copied nor announced (remove the symlink or move the file, then save it again)`,
    );
  }
}
