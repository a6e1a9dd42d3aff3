/** One change to one file, relative to what the consumer last acknowledged. */
export interface FileEvent {
  kind: 'created' | 'changed' | 'deleted' | 'moved';
  /** Project-relative POSIX path. For `moved`, the new path. */
  path: string;
  /** For `moved`: the old project-relative path. */
  from?: string;
  /** Bytes; for `deleted`, the last size seen. */
  size: number;
  /** Modification time in nanoseconds since the epoch, as a decimal string. */
  mtimeNs: string;
  /** Lower-case hex SHA-256 of the content; null for `deleted`. */
  sha256: string | null;
}

/** Bytes appended to a file under the `log` policy, delivered in order per file. */
export interface LogChunk {
  path: string;
  /** Byte offset of `data[0]` in the file. */
  offset: number;
  data: Uint8Array;
  /** The file shrank below what was already streamed; this chunk restarts at offset 0. */
  truncated?: boolean;
  /** The path now names a different file (rotation); this chunk starts the new file. */
  rotated?: boolean;
}

export type Policy = 'artefact' | 'log' | 'ignore';

export interface PolicyRule {
  /** gitignore-style pattern, relative to the root. The first matching rule wins. */
  pattern: string;
  policy: Policy;
}

/** pino-compatible: `logger.warn({ err, path }, 'message')`. */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface FileWatcherOptions {
  /** Directory to watch. */
  root: string;
  /** Where stamps (and log offsets) persist between runs. Ignored automatically if under root. */
  stampFile: string;
  /**
   * Receives each batch. Stamps are recorded only after the promise resolves; a rejection
   * retries the same batch with backoff.
   */
  onBatch: (events: FileEvent[]) => Promise<void>;
  /** Receives appended bytes of `log` files, in order; offsets advance only on resolve. */
  onLog?: (chunk: LogChunk) => Promise<void>;
  /** Quiet window per file before it is looked at. Default 5. */
  debounceMs?: number;
  /**
   * A file found gone or empty is looked at again this much later before that counts: it is
   * often half-way through a save (rename dance, truncate then write). Default 50.
   */
  settleMs?: number;
  /** A file written continuously is still looked at this long after its first event. Default 500. */
  maxWaitMs?: number;
  /** How long a ready event may wait for its batch while other files still settle. Default 100. */
  batchMs?: number;
  /** Events per batch at most. Default 5000 (the `files.changed` message limit). */
  maxBatchSize?: number;
  /** Undelivered events kept in memory at most; beyond, they are dropped and found by a rescan. Default 100000. */
  maxPending?: number;
  /** A file in gitignore syntax, relative to root or absolute. Missing file: nothing extra ignored. */
  ignoreFile?: string;
  /** Extra gitignore-style patterns to ignore. */
  ignore?: readonly string[];
  /** Apply `defaultIgnores` (editor temp files, .git, node_modules). Default true. */
  useDefaultIgnores?: boolean;
  /** Per-pattern policies; the first match wins; unmatched files are `artefact`. */
  policies?: readonly PolicyRule[];
  /** While any of these (relative to root) exists, events are held. Default ['.git/index.lock']. */
  vcsLockFiles?: readonly string[];
  /**
   * How long a look at a path announced by expectWrite waits for its reportWrite at most; then
   * it is made and announced as usual. Default 2000.
   */
  reportWaitMs?: number;
  /** Clock granularity for racy stamps (git's racy-git). Default 20. */
  racyWindowMs?: number;
  /** Poll period for subtrees that could not get an inotify watch. Default 1000. */
  pollIntervalMs?: number;
  /** At most this many directory watches; the rest is polled. Default unlimited. */
  maxWatches?: number;
  /** Full rescan period as a safety net (0 = off). Default 0. */
  rescanIntervalMs?: number;
  /** Delay before changed stamps are written to disk. Default 1000. */
  persistDelayMs?: number;
  /** First retry delay after onBatch/onLog rejects; doubles up to retryMaxMs. Default 100. */
  retryInitialMs?: number;
  /** Default 30000. */
  retryMaxMs?: number;
  /** How long close() keeps trying to deliver before it gives up (the next start rescans). Default 5000. */
  closeTimeoutMs?: number;
  logger?: Logger;
}

export interface WatcherStats {
  /** Files hashed since start (each read of a file's bytes counts once). */
  hashed: number;
  hashedBytes: number;
  /** Files stat'ed by scans. */
  scanned: number;
  /** Events acknowledged by onBatch. */
  events: number;
  batches: number;
  /** onBatch or onLog rejections. */
  retries: number;
  /** Events dropped from memory because too many were pending (found again by rescan). */
  dropped: number;
  /** Paths waiting in debounce, in a hash, ready or in flight. */
  pending: number;
  /** Paths held while a VCS lock file exists. */
  held: number;
  /** Looks waiting for a producer's report (expectWrite, reportWrite). */
  parked: number;
  /** Directory watches (inotify) in use. */
  watches: number;
  /** Directories polled because no watch could be had. */
  polledDirs: number;
  rescans: number;
  logChunks: number;
  logBytes: number;
  /** Files whose stamps are recorded. */
  stamps: number;
  /** Looks that found the bytes a producer reported (reportWrite): recorded, not announced. */
  reported: number;
}
