import { isNoSuchFile, type SshPool, sftpOps, TransportError } from '@computepods/transport';

/**
 * The SFTP calls of the pod mirror: transport's sftpOps (every failure a TransportError, whose
 * `retryable` says whether the server refused or the session went away), plus a mkdir -p that
 * follows a symlinked directory on the way to the remote root, which sftpOps' mkdirp refuses.
 */

/** The SFTP session type, taken from the pool's API so this package needs no ssh2 types. */
export type Sftp = Parameters<Parameters<SshPool['sftp']>[1]>[0];

export { isNoSuchFile };
export const { lstat, mkdir, realpath, stat, unlink } = sftpOps;
/** lstat, or undefined when nothing is there. */
export const lstatOrUndefined = sftpOps.statOrUndefined;

/** mkdir, tolerating a directory that another writer made first. */
export async function mkdirOnce(s: Sftp, path: string): Promise<void> {
  try {
    await mkdir(s, path);
  } catch (err) {
    if (!(await lstatOrUndefined(s, path))?.isDirectory()) throw err;
  }
}

/** mkdir -p for an absolute or home-relative path. */
export async function mkdirp(s: Sftp, dir: string): Promise<void> {
  let cur = dir.startsWith('/') ? '' : '.';
  for (const part of dir.split('/')) {
    if (!part || part === '.') continue;
    cur = `${cur}/${part}`;
    const st = await lstatOrUndefined(s, cur);
    if (!st) await mkdirOnce(s, cur);
    else if (!st.isDirectory() && !(await stat(s, cur)).isDirectory())
      throw new TransportError('TRANSPORT_SFTP', `${cur} exists on the pod and is not a directory`);
  }
}
