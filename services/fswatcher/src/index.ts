/**
 * The FSWatcher service: publishes a pod workspace's file changes to `cp.<project>.files.changed`.
 *
 *   CP_PROJECT=demo CP_WORKSPACE=/work/demo tsx services/fswatcher/src/main.ts
 */
export { type FsWatcherConfig, fsWatcherConfig } from './config.js';
export { startFsWatcher } from './fswatcher.js';
