import { CpError, type CpErrorOptions } from '@computepods/protocol';

/**
 * One class per failure a caller can act on. Each has a stable `code`, keeps the original
 * `cause`, says whether retrying can help, and its message says what to do next.
 */

/** The directory to watch does not exist or is not a directory. */
export class WatchRootError extends CpError {
  constructor(
    readonly root: string,
    options?: ErrorOptions,
  ) {
    super(
      'CP_FSWATCH_ROOT',
      `cannot watch ${JSON.stringify(root)}: it is missing or not a directory; create it or pass an existing project root`,
      options,
    );
  }
}

/**
 * The kernel refused another inotify watch (ENOSPC) or inotify instance (EMFILE), or the
 * configured `maxWatches` budget is spent. The subtree is polled instead, which is slower;
 * raising the sysctl named in `sysctl` restores instant notification.
 */
export class WatchLimitError extends CpError {
  readonly sysctl: string;
  constructor(
    readonly dir: string,
    reason: 'ENOSPC' | 'EMFILE' | 'budget',
    options?: ErrorOptions,
  ) {
    const sysctl =
      reason === 'EMFILE' ? 'fs.inotify.max_user_instances' : 'fs.inotify.max_user_watches';
    const what =
      reason === 'budget'
        ? 'the maxWatches budget of this watcher is spent'
        : reason === 'EMFILE'
          ? 'the kernel has no inotify instance left (EMFILE)'
          : 'the kernel has no inotify watch left (ENOSPC)';
    super(
      'CP_FSWATCH_WATCH_LIMIT',
      `${what} at ${JSON.stringify(dir)}; polling this subtree instead. ` +
        (reason === 'budget'
          ? 'Raise the maxWatches option for instant notification.'
          : `Raise ${sysctl} (e.g. \`sudo sysctl -w ${sysctl}=524288\`, and persist it in /etc/sysctl.d/) for instant notification.`),
      options,
    );
    this.sysctl = sysctl;
  }
}

/** The stamp file could not be read, parsed or written. */
export class StampFileError extends CpError {
  constructor(
    readonly file: string,
    readonly action: 'read' | 'parse' | 'write',
    options?: ErrorOptions,
  ) {
    const next =
      action === 'parse'
        ? 'it is ignored and every file is hashed once (delete it to silence this warning)'
        : action === 'read'
          ? 'check that the file is readable by this user'
          : 'check that its directory exists, is writable and the disk is not full';
    super('CP_FSWATCH_STAMP_FILE', `cannot ${action} stamp file ${JSON.stringify(file)}: ${next}`, {
      ...options,
      retryable: action === 'write',
    });
  }
}

/**
 * A worker thread of the pool that hashes and stats failed the task: it threw, it exited (a new
 * one takes the next task: retryable), or the pool was destroyed (the watcher closed).
 */
export class WorkerPoolError extends CpError {
  constructor(what: string, options?: CpErrorOptions) {
    super('CP_FSWATCH_WORKER', `fswatch worker pool: ${what}`, options);
  }
}

/** The options given to FileWatcher cannot work together. */
export class WatchConfigError extends CpError {
  constructor(message: string, options?: ErrorOptions) {
    super('CP_FSWATCH_CONFIG', message, options);
  }
}

/** A file could not be hashed (permission denied, I/O error); the message names the file. */
export class HashError extends CpError {
  constructor(
    readonly path: string,
    readonly errno: string,
    options?: ErrorOptions,
  ) {
    super(
      'CP_FSWATCH_HASH',
      `cannot hash ${JSON.stringify(path)} (${errno}): ` +
        (errno === 'EACCES' || errno === 'EPERM'
          ? 'give this user read permission or ignore the file'
          : errno === 'ENOENT'
            ? 'the file vanished; it is reported when it reappears'
            : 'check the disk and retry'),
      { ...options, retryable: errno !== 'EACCES' && errno !== 'EPERM' },
    );
  }
}

/** The watcher was closed; create a new FileWatcher to watch again. */
export class WatcherClosedError extends CpError {
  constructor() {
    super('CP_FSWATCH_CLOSED', 'the FileWatcher is closed; create a new one to watch again');
  }
}
