/**
 * inotify2nats: the daemon people run on their own machines. It watches a directory, copies
 * each saved file into a pod's workspace over verified SFTP, then publishes `files.changed`;
 * files under a `log` pattern are streamed like `tail -f` (@computepods/logstream).
 *
 *   import { resolveSettings, startDaemon } from '@computepods/inotify2nats';
 *   const settings = resolveSettings({ cli: { project: 'demo', pod: 'laptop', root: '.',
 *     ssh: 'cp@pod:2222', remoteRoot: 'workspace' }, env: process.env, cwd, home });
 *   const daemon = await startDaemon(settings);
 *   await daemon.stop();
 */
export {
  type UploadBatchOptions,
  type Uploaded,
  type UploadItem,
  uploadBatch,
} from './batch-upload.js';
export { buildProgram } from './cli.js';
export {
  type Daemon,
  type DaemonOptions,
  sshTargetOf,
  stampFileFor,
  startDaemon,
} from './daemon.js';
export {
  PodSyncError,
  PodUnreachableError,
  SettingsError,
  UnsafeSyncPathError,
} from './errors.js';
export { type MirrorResult, PodMirror, type PodMirrorOptions } from './pod-mirror.js';
export {
  CONFIG_ENV,
  CONFIG_FLAG,
  FIELDS,
  type FieldName,
  resolveSettings,
  Settings,
  type SettingsSources,
} from './settings.js';
export { parseSshEndpoint, type SshEndpoint } from './ssh-endpoint.js';
