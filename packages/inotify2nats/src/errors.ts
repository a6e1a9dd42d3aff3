/** A setting is missing or wrong; the message names the field and where its value came from. */
export class SettingsError extends Error {
  readonly code = 'CP_INOTIFY_SETTINGS';
  readonly retryable = false;
  constructor(
    message: string,
    readonly field?: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'SettingsError';
  }
}

/**
 * The pod could not be reached or refused us (connection, host key, login). The batch stays
 * pending and is retried with backoff: nothing is lost, the stamps are not committed.
 */
export class PodUnreachableError extends Error {
  readonly code = 'CP_POD_UNREACHABLE';
  readonly retryable = true;
  constructor(
    readonly pod: string,
    readonly endpoint: string,
    pending: number,
    /** A command the user can run to see the same failure, e.g. an `ssh` line. */
    check: string,
    options: ErrorOptions & { cause: Error },
  ) {
    super(
      `cannot reach pod ${pod} over SSH at ${endpoint}: ${options.cause.message}; ${pending > 0 ? `${pending} change(s) stay pending and are retried with backoff; ` : ''}check that \`${check}\` works`,
      options,
    );
    this.name = 'PodUnreachableError';
  }
}

/** Work on the pod failed in a way a retry may fix (verification, a dropped session, ...). */
export class PodSyncError extends Error {
  readonly code = 'CP_POD_SYNC_FAILED';
  readonly retryable = true;
  constructor(
    readonly pod: string,
    /** What could not be done, e.g. `copy paper/main.tex`. */
    readonly action: string,
    options: ErrorOptions & { cause: Error },
  ) {
    super(`pod ${pod}: could not ${action}: ${options.cause.message}`, options);
    this.name = 'PodSyncError';
  }
}

/**
 * A path would leave the watched root or the remote root (a symlink on either side, or a name
 * with `..`). Never retried: the file is left out of the batch and named in an error log line.
 */
export class UnsafeSyncPathError extends Error {
  readonly code = 'CP_UNSAFE_SYNC_PATH';
  readonly retryable = false;
  constructor(
    readonly path: string,
    reason: string,
  ) {
    super(
      `refusing to sync ${JSON.stringify(path)}: ${reason}; it was not copied nor announced (remove the symlink or move the file, then save it again)`,
    );
    this.name = 'UnsafeSyncPathError';
  }
}
