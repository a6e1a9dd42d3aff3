/**
 * SSH connection pool (one actor per host+port+user+key) and verified SFTP transfers.
 *
 *   import { SshPool, shellQuote, uploadTree } from '@computepods/transport';
 *   const pool = new SshPool({ maxConnectionsPerHost: 2, channelsPerConnection: 10 });
 *   const target = { host, port, username, privateKeyPath, knownHostsPath };
 *   const { code, stdout } = await pool.exec(target, `ls -- ${shellQuote(dir)}`);
 *   await pool.exec(target, ['sbatch', '--parsable', script]); // array: each arg quoted
 *   await uploadTree(pool, target, './paper', 'jobs/42/paper'); // temp dir, SHA-256, rename
 *   await pool.close();
 */
export { classifyConnectError } from './classify.js';
export { type ConnectOptions, openClient } from './connect.js';
export {
  ChangedWhileReadError,
  HostKeyError,
  TransportError,
  type TransportErrorCode,
  type TransportErrorOptions,
  UnsafePathError,
  VerifyError,
} from './errors.js';
export type { ExecOptions, ExecResult } from './exec.js';
export { TRANSFER_MODE_MASK, transferMode } from './file-mode.js';
export {
  downloadFile,
  type FileTransferOptions,
  type FileTransferReport,
  STREAM_FROM,
  uploadFile,
} from './file-transfer.js';
export {
  downloadFiles,
  type FileDownloadOutcome,
  type FilesDownloadItem,
  type FilesDownloadOptions,
} from './files-download.js';
export { getHashed, type Hashed, type Progress, putHashed } from './hashed-copy.js';
export { sha256File, sha256Remote } from './hashing.js';
export {
  type HostKeyVerdict,
  judgeHostKey,
  type KnownHostEntry,
  knownHostsName,
  parseKnownHosts,
  readKnownHosts,
} from './known-hosts.js';
export { silentLogger, type TransportLogger } from './logger.js';
export { assertSafeEntryName, assertSafeRelativePath, commandPath } from './safe-path.js';
export type { SshPoolOptions } from './settings.js';
export { isNoSuchFile, sftpOps } from './sftp-ops.js';
export { assertSafeName, isSafeName, shellJoin, shellQuote } from './shell-quote.js';
export { SshPool } from './ssh-pool.js';
export type { SshPoolStats } from './stats.js';
export { putStreamed, type StreamedPut } from './stream-put.js';
export { endpointOf, type SshTarget, targetKey } from './target.js';
export {
  downloadTree,
  type TreeTransferOptions,
  type TreeTransferReport,
  uploadTree,
} from './tree-transfer.js';
