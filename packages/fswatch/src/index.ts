/**
 * Change detection core: tells you, within milliseconds and exactly once, that a file's
 * content changed — never for a touch, and without losing a change across restarts.
 *
 * ```ts
 * import { FileWatcher, hashFile } from '@computepods/fswatch';
 *
 * const w = new FileWatcher({
 *   root: '/work/project',
 *   stampFile: '/var/lib/cp/project.stamps',
 *   policies: [{ pattern: '*.log', policy: 'log' }],
 *   // Stamps are recorded only after this resolves; a rejection is retried.
 *   onBatch: async (events) => publish(events),
 *   onLog: async ({ path, offset, data }) => appendRemote(path, offset, data),
 * });
 * await w.start(); // reports what changed while we were not running, then watches
 * const sha = await hashFile('/work/project/data.bin');
 * await w.close(); // delivers what is pending, persists the stamps
 * ```
 */
export { Debouncer, type DueItem } from './debounce.js';
export {
  HashError,
  StampFileError,
  WatchConfigError,
  WatcherClosedError,
  WatchLimitError,
  WatchRootError,
  WorkerPoolError,
} from './errors.js';
export { type HashFileOptions, hashFile } from './hash.js';
export { defaultIgnores, PathMatcher } from './ignore.js';
export type { ReportedWrite } from './reports.js';
export { isRacy, type LogOffset, type Stamp, StampCache } from './stamps.js';
export type {
  FileEvent,
  FileWatcherOptions,
  LogChunk,
  Logger,
  Policy,
  PolicyRule,
  WatcherStats,
} from './types.js';
export { FileWatcher } from './watcher.js';
