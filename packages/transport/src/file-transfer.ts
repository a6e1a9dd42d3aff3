import { randomBytes } from 'node:crypto';
import { chmod, mkdir, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { TransportError, UnsafePathError, VerifyError, worthRetryingTransfer } from './errors.js';
import { transferMode } from './file-mode.js';
import { getHashed, type Hashed, putHashed } from './hashed-copy.js';
import { sha256Remote, sha256Sftp } from './hashing.js';
import { sftpOps } from './sftp-ops.js';
import type { SshPool } from './ssh-pool.js';
import { getStreamed } from './stream-get.js';
import { putStreamed } from './stream-put.js';
import { endpointOf, type SshTarget } from './target.js';

export interface FileTransferOptions {
  /** 'replace' (default) atomically replaces an existing file; 'fail' refuses. */
  readonly ifExists?: 'replace' | 'fail';
  readonly verify?: 'reread' | 'sha256sum';
  /**
   * Tries in all (default 3) when the connection drops or the server goes away mid-transfer:
   * each try starts over under a new temp name, so the destination only ever holds a whole,
   * verified file. A hash mismatch or a refusal from the server is not tried again.
   */
  readonly attempts?: number;
  /**
   * How uploadFile sends the bytes. 'exec' streams them over one exec channel into `cat`, then
   * the pod hashes the file (stream-put.ts): on 1 GiB it beat the SFTP path, which puts 64 x 32
   * KiB writes and then has the pod hash the file the same way. 'sftp' is that path. Default:
   * 'exec' for a file of STREAM_FROM bytes or more verified by 'sha256sum' (falling back to
   * 'sftp' on a pod without a hasher), else 'sftp'. downloadFile: 'exec' streams the file out of
   * `cat` (stream-get.ts; 'sftp' on a pod without `cat`), 'sftp' pipelines SFTP reads. Default:
   * 'exec' for a file of STREAM_FROM bytes or more, else 'sftp'.
   */
  readonly via?: 'exec' | 'sftp';
}

/**
 * From this size on uploadFile and downloadFile stream over exec by default: below, SFTP is as
 * quick, and a download's exec would cost a channel more.
 */
export const STREAM_FROM = 1 << 20;

async function withAttempts<T>(options: FileTransferOptions, once: () => Promise<T>): Promise<T> {
  const attempts = Math.max(1, options.attempts ?? 3);
  for (let attempt = 1; ; attempt++) {
    try {
      return await once();
    } catch (err) {
      if (attempt >= attempts || !worthRetryingTransfer(err)) throw err;
      // The pool reconnects (with its own backoff and open throttle); a short pause is enough.
      await new Promise((r) => setTimeout(r, 100 * attempt));
    }
  }
}

export interface FileTransferReport {
  readonly bytes: number;
  readonly sha256: string;
  readonly replaced: boolean;
  readonly verifiedBy: 'reread' | 'sha256sum';
  /** How the bytes went: over one exec channel (`cat`) or as SFTP requests. */
  readonly via: 'exec' | 'sftp';
}

function splitRemote(path: string): { dir: string; base: string } {
  if (!path || path.endsWith('/') || path.includes('\0')) {
    throw new UnsafePathError(
      path,
      `remote file path ${JSON.stringify(path)} names no file`,
      'TRANSPORT_UNSAFE_PATH',
    );
  }
  const i = path.lastIndexOf('/');
  return i < 0
    ? { dir: '.', base: path }
    : { dir: i === 0 ? '/' : path.slice(0, i), base: path.slice(i + 1) };
}

async function remoteHash(
  pool: SshPool,
  target: SshTarget,
  dir: string,
  base: string,
  mode: 'reread' | 'sha256sum',
  bytes?: number,
): Promise<{ hash: string; by: 'reread' | 'sha256sum' }> {
  if (mode === 'sha256sum') {
    const hash = (await sha256Remote(pool, target, dir, [base], { bytes }))?.get(base);
    if (hash) return { hash, by: 'sha256sum' };
  }
  const hash = await pool.sftp(target, (s) => sha256Sftp(s, `${dir}/${base}`));
  return { hash, by: 'reread' };
}

/**
 * Uploads one file to a hidden temp name beside remotePath, checks its SHA-256 on the remote
 * host, then renames it over remotePath (rename(2): readers never see a partial file). A
 * transfer cut off by a dropped connection is started over (options.attempts).
 */
export function uploadFile(
  pool: SshPool,
  target: SshTarget,
  localPath: string,
  remotePath: string,
  options: FileTransferOptions = {},
): Promise<FileTransferReport> {
  return withAttempts(options, () => uploadOnce(pool, target, localPath, remotePath, options));
}

async function uploadOnce(
  pool: SshPool,
  target: SshTarget,
  localPath: string,
  remotePath: string,
  options: FileTransferOptions,
): Promise<FileTransferReport> {
  const { dir, base } = splitRemote(remotePath);
  const st = await stat(localPath);
  if (!st.isFile()) {
    throw new TransportError('TRANSPORT_UNSUPPORTED_FILE', `${localPath} is not a regular file`);
  }
  const tmpBase = `.${base}.tmp-${randomBytes(6).toString('hex')}`;
  const tmp = `${dir}/${tmpBase}`;
  const where = `${endpointOf(target)}:${remotePath}`;
  const verify = options.verify ?? 'sha256sum';
  const via = options.via ?? (st.size >= STREAM_FROM && verify === 'sha256sum' ? 'exec' : 'sftp');
  try {
    const first = await pool.sftp(target, async (sftp) => {
      const there = (await sftpOps.statOrUndefined(sftp, remotePath)) !== undefined;
      if (there && options.ifExists === 'fail') {
        throw new TransportError(
          'TRANSPORT_DESTINATION_EXISTS',
          `${where} exists; remove it or pass ifExists: 'replace'`,
        );
      }
      await sftpOps.mkdirp(sftp, dir);
      // Hashed as it is read and sent: the hash is of the very bytes the pod got.
      return {
        there,
        put: via === 'sftp' ? await putHashed(sftp, localPath, tmp, st.mode) : undefined,
      };
    });
    // The pod hashes the file once cat has written it; undefined: the pod has no hasher.
    const streamed = first.put
      ? undefined
      : await putStreamed(pool, target, localPath, tmp, st.mode);
    let sent: Hashed;
    let by: FileTransferReport['verifiedBy'] = 'sha256sum';
    if (streamed) {
      sent = streamed.sent;
      if (streamed.pod.sha256 !== sent.sha256 || streamed.pod.bytes !== sent.bytes)
        throw new VerifyError(
          where,
          sent.sha256,
          `${streamed.pod.sha256} (${streamed.pod.bytes} bytes)`,
        );
    } else {
      sent =
        first.put ?? (await pool.sftp(target, (sftp) => putHashed(sftp, localPath, tmp, st.mode)));
      const got = await remoteHash(pool, target, dir, tmpBase, verify, sent.bytes);
      by = got.by;
      if (got.hash !== sent.sha256) throw new VerifyError(where, sent.sha256, got.hash);
    }
    await pool.sftp(target, (sftp) => sftpOps.replace(sftp, tmp, remotePath));
    return {
      bytes: sent.bytes,
      sha256: sent.sha256,
      replaced: first.there,
      verifiedBy: by,
      via: streamed ? 'exec' : 'sftp',
    };
  } catch (err) {
    await pool
      .sftp(target, async (sftp) => {
        if (await sftpOps.statOrUndefined(sftp, tmp)) await sftpOps.unlink(sftp, tmp);
      })
      .catch(() => undefined);
    throw err;
  }
}

/**
 * Downloads one file to a hidden temp name beside localPath, checks it against the SHA-256
 * the remote host computed, then renames it over localPath. A transfer cut off by a dropped
 * connection is started over (options.attempts).
 */
export function downloadFile(
  pool: SshPool,
  target: SshTarget,
  remotePath: string,
  localPath: string,
  options: FileTransferOptions = {},
): Promise<FileTransferReport> {
  return withAttempts(options, () => downloadOnce(pool, target, remotePath, localPath, options));
}

async function downloadOnce(
  pool: SshPool,
  target: SshTarget,
  remotePath: string,
  localPath: string,
  options: FileTransferOptions,
): Promise<FileTransferReport> {
  const { dir, base } = splitRemote(remotePath);
  const existed = await stat(localPath).then(
    () => true,
    () => false,
  );
  if (existed && options.ifExists === 'fail') {
    throw new TransportError(
      'TRANSPORT_DESTINATION_EXISTS',
      `${localPath} exists; remove it or pass ifExists: 'replace'`,
    );
  }
  const tmp = join(
    dirname(localPath),
    `.${basename(localPath)}.tmp-${randomBytes(6).toString('hex')}`,
  );
  const verify = options.verify ?? 'sha256sum';
  try {
    // The pod hashes while the bytes come over, and we hash them as they arrive: on a big file
    // each takes seconds, and nothing reads the file a second time.
    // Both settle before anything else happens, so a failure leaves no transfer writing tmp.
    const [hashed, fetched] = await Promise.allSettled([
      remoteHash(pool, target, dir, base, verify),
      (async () => {
        const first = await pool.sftp(target, async (sftp) => {
          const st = await sftpOps.stat(sftp, remotePath);
          if (!st.isFile()) {
            throw new TransportError(
              'TRANSPORT_UNSUPPORTED_FILE',
              `${remotePath} is not a regular file`,
            );
          }
          await mkdir(dirname(localPath), { recursive: true });
          const mode = transferMode(st.mode);
          const via = options.via ?? (st.size >= STREAM_FROM ? 'exec' : 'sftp');
          const got = via === 'exec' ? undefined : await getHashed(sftp, remotePath, tmp, mode);
          return { mode, size: st.size, got };
        });
        const { mode, size } = first;
        if (first.got) return { mode, got: first.got, via: 'sftp' as const };
        const streamed = await getStreamed(pool, target, remotePath, size, tmp, mode);
        if (streamed) return { mode, got: streamed, via: 'exec' as const };
        // The pod has no cat: the empty file getStreamed made goes, SFTP reads instead.
        await rm(tmp);
        const got = await pool.sftp(target, (sftp) => getHashed(sftp, remotePath, tmp, mode));
        return { mode, got, via: 'sftp' as const };
      })(),
    ]);
    if (hashed.status === 'rejected') throw hashed.reason;
    if (fetched.status === 'rejected') throw fetched.reason;
    const { hash: want, by } = hashed.value;
    const { mode, got, via } = fetched.value;
    // Created with the mode less the umask: given exactly, as the pod has it.
    await chmod(tmp, mode);
    if (got.sha256 !== want) throw new VerifyError(localPath, want, got.sha256);
    await rename(tmp, localPath);
    return { bytes: got.bytes, sha256: got.sha256, replaced: existed, verifiedBy: by, via };
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}
