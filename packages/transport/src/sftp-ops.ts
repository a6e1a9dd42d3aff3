import { open } from 'node:fs/promises';
import { isRetryable } from '@computepods/protocol';
import type { FileEntryWithStats, SFTPWrapper, Stats } from 'ssh2';
import { TransportError } from './errors.js';
import { TRANSFER_MODE_MASK, transferMode } from './file-mode.js';

/**
 * Bytes per SFTP read request: OpenSSH's sftp-server limit (limits@openssh.com announces
 * 261,120). ssh2 splits a request past a smaller server's limit itself. Against ssh2's 32 KiB
 * default, a 1 GiB fastGet took 2.2–2.4 s instead of 5.0–5.4 s here. Writes keep 32 KiB
 * (hashed-copy.ts says why).
 */
export const SFTP_CHUNK = 255 * 1024;

/** Files up to this size are put in one write request (see sftpOps.fastPut). */
const SMALL_PUT = 64 * 1024;

/** The whole file when it is at most SMALL_PUT bytes, else undefined. */
async function readSmall(path: string): Promise<Buffer | undefined> {
  const fh = await open(path, 'r');
  try {
    const { size } = await fh.stat();
    if (size > SMALL_PUT) return undefined;
    // Read to the end: the file may have grown since the stat.
    const data = await fh.readFile();
    return data.length > SMALL_PUT ? undefined : data;
  } finally {
    await fh.close();
  }
}

/**
 * Per SFTP session, the modes (with the directory: a default ACL there cuts bits as a umask
 * does) that a file created with them by open was seen to get exactly (sftpOps.putBuffer).
 */
const exactAtOpen = new WeakMap<SFTPWrapper, Set<string>>();

// SFTP status codes (draft-ietf-secsh-filexfer-02) that ssh2 puts in err.code.
const NO_SUCH_FILE = 2;
const OP_UNSUPPORTED = 8;

/** An SFTP call's failure as a TransportError: retryable unless the server answered a status. */
export function sftpFailure(op: string, path: string, err: unknown): TransportError {
  const e = err as { code?: number; message?: string };
  return new TransportError('TRANSPORT_SFTP', `sftp ${op} ${path}: ${e?.message ?? String(err)}`, {
    cause: err,
    // A status from the server (permission, missing dir) repeats: a rule of SFTP, which
    // isRetryable cannot know. Anything else (a dropped session, a local read) is its rule.
    retryable: typeof e?.code !== 'number' && isRetryable(err),
  });
}

function call<T>(op: string, path: string, run: (cb: (err: unknown, v?: T) => void) => void) {
  return new Promise<T>((resolve, reject) => {
    run((err, v) => (err ? reject(sftpFailure(op, path, err)) : resolve(v as T)));
  });
}

export function isNoSuchFile(err: unknown): boolean {
  return (err as { cause?: { code?: unknown } })?.cause?.code === NO_SUCH_FILE;
}

/**
 * The server does not do posix-rename: ssh2 throws before sending when the server did not offer
 * the extension (its message is all it gives), or the server answers OP_UNSUPPORTED.
 */
function renameUnsupported(err: unknown): boolean {
  if (err instanceof TransportError)
    return (err.cause as { code?: unknown } | undefined)?.code === OP_UNSUPPORTED;
  return /does not support/i.test(String((err as Error | undefined)?.message));
}

/** Promise forms of the SFTP calls the tree transfer needs. */
export const sftpOps = {
  stat: (s: SFTPWrapper, p: string) => call<Stats>('stat', p, (cb) => s.stat(p, cb)),
  lstat: (s: SFTPWrapper, p: string) => call<Stats>('lstat', p, (cb) => s.lstat(p, cb)),
  /** stat, or undefined when nothing is there. */
  async statOrUndefined(s: SFTPWrapper, p: string): Promise<Stats | undefined> {
    try {
      return await sftpOps.lstat(s, p);
    } catch (err) {
      if (isNoSuchFile(err)) return undefined;
      throw err;
    }
  },
  mkdir: (s: SFTPWrapper, p: string, mode = 0o755) =>
    call<void>('mkdir', p, (cb) => s.mkdir(p, { mode }, cb)),
  readdir: (s: SFTPWrapper, p: string) =>
    call<FileEntryWithStats[]>('readdir', p, (cb) => s.readdir(p, cb)),
  rename: (s: SFTPWrapper, from: string, to: string) =>
    call<void>('rename', `${from} -> ${to}`, (cb) => s.rename(from, to, cb)),
  /** rename(2) semantics: replaces an existing file atomically (OpenSSH extension). */
  posixRename: (s: SFTPWrapper, from: string, to: string) =>
    call<void>('posix-rename', `${from} -> ${to}`, (cb) => s.ext_openssh_rename(from, to, cb)),
  /**
   * Renames `from` over `to`: atomically by posix-rename where the server does it, else unlink
   * then rename (a reader may briefly find no file).
   */
  async replace(s: SFTPWrapper, from: string, to: string): Promise<void> {
    try {
      return await sftpOps.posixRename(s, from, to);
    } catch (err) {
      if (!renameUnsupported(err)) throw err;
    }
    await sftpOps.unlink(s, to).catch((err: unknown) => {
      if (!isNoSuchFile(err)) throw err;
    });
    await sftpOps.rename(s, from, to);
  },
  unlink: (s: SFTPWrapper, p: string) => call<void>('unlink', p, (cb) => s.unlink(p, cb)),
  rmdir: (s: SFTPWrapper, p: string) => call<void>('rmdir', p, (cb) => s.rmdir(p, cb)),
  // Masked here too, so no caller can hand a setuid, setgid or sticky bit to the server.
  chmod: (s: SFTPWrapper, p: string, mode: number) =>
    call<void>('chmod', p, (cb) => s.chmod(p, transferMode(mode), cb)),
  /**
   * Puts a local file with the given mode. One of up to SMALL_PUT bytes goes as open, then
   * fchmod and write together, then close: three round trips where ssh2's fastPut takes four
   * (measured: 10,000 x 4 KiB one at a time 5.6 s against 6.1 s; 4 in flight, no difference),
   * and an empty file gets its mode too (fastPut skips the fchmod then, leaving the server's
   * default: a 0600 file arrived as 0644). Bigger files take fastPut's 64 pipelined writes.
   */
  async fastPut(s: SFTPWrapper, local: string, remote: string, mode: number): Promise<void> {
    const m = transferMode(mode);
    // Local failures read as fastPut's did: a TransportError with the cause.
    const data = await readSmall(local).catch((err: unknown) => {
      throw sftpFailure('put', remote, err);
    });
    if (!data) {
      return call<void>('put', remote, (cb) => s.fastPut(local, remote, { mode: m }, cb));
    }
    await sftpOps.putBuffer(s, remote, data, m);
  },
  /**
   * Writes `data` (at most the server's write limit, 255 KiB at OpenSSH) as the remote file
   * with `mode`, in three round trips: open, the write, close. The file is created by the open
   * (O_EXCL), its mode among the open's attributes, which the server's umask may cut: the first
   * file of a mode in a directory on a session is checked with an fstat sent with the write,
   * and fchmod'ed only if bits were cut; a mode seen to arrive whole there needs no check after.
   * A file already there (the exclusive open fails) is truncated and fchmod'ed instead.
   */
  async putBuffer(s: SFTPWrapper, remote: string, data: Buffer, mode: number): Promise<void> {
    const m = transferMode(mode);
    const write = (h: Buffer) =>
      data.length > 0
        ? call<void>('put', remote, (cb) => s.write(h, data, 0, data.length, 0, cb))
        : undefined;
    const chmod = (h: Buffer) => call<void>('chmod', remote, (cb) => s.fchmod(h, m, cb));
    const created = await call<Buffer>('open', remote, (cb) =>
      s.open(remote, 'wx', { mode: m }, cb),
    ).catch(() => undefined);
    const handle = created ?? (await call<Buffer>('open', remote, (cb) => s.open(remote, 'w', cb)));
    const exact = exactAtOpen.get(s) ?? new Set<string>();
    exactAtOpen.set(s, exact);
    const key = `${m} ${remote.slice(0, remote.lastIndexOf('/') + 1)}`;
    const done = await Promise.allSettled([
      write(handle),
      !created
        ? chmod(handle)
        : exact.has(key)
          ? undefined
          : sftpOps.fstat(s, handle, remote).then((st) => {
              if ((st.mode & TRANSFER_MODE_MASK) === m) exact.add(key);
              else return chmod(handle);
            }),
    ]);
    await call<void>('close', remote, (cb) => s.close(handle, cb));
    for (const r of done) if (r.status === 'rejected') throw r.reason;
  },
  open: (s: SFTPWrapper, p: string, flags: 'r' | 'w') =>
    call<Buffer>('open', p, (cb) => s.open(p, flags, cb)),
  /** `p` only names the file in errors. */
  fstat: (s: SFTPWrapper, h: Buffer, p: string) => call<Stats>('fstat', p, (cb) => s.fstat(h, cb)),
  /** Reads up to buf.length - off bytes at file offset `off`; 0 at the end of the file. */
  read: (s: SFTPWrapper, h: Buffer, buf: Buffer, off: number, p: string) =>
    call<number>('read', p, (cb) => s.read(h, buf, off, buf.length - off, off, cb)),
  close: (s: SFTPWrapper, h: Buffer, p: string) => call<void>('close', p, (cb) => s.close(h, cb)),
  /** The server's canonical form of `p` (symlinks resolved, `~`-relative made absolute). */
  realpath: (s: SFTPWrapper, p: string) => call<string>('realpath', p, (cb) => s.realpath(p, cb)),
  fastGet: (s: SFTPWrapper, remote: string, local: string) =>
    call<void>('get', remote, (cb) => s.fastGet(remote, local, { chunkSize: SFTP_CHUNK }, cb)),

  /** mkdir, tolerating a directory that another writer made first. */
  async mkdirOnce(s: SFTPWrapper, p: string): Promise<void> {
    try {
      await sftpOps.mkdir(s, p);
    } catch (err) {
      if (!(await sftpOps.statOrUndefined(s, p))?.isDirectory()) throw err;
    }
  },

  /**
   * mkdir -p: creates each missing component of an absolute or relative path. A component
   * that is a symlink is refused, unless `followSymlinks` (then one to a directory will do: a
   * workspace under a symlinked home).
   */
  async mkdirp(
    s: SFTPWrapper,
    dir: string,
    options: { readonly followSymlinks?: boolean } = {},
  ): Promise<void> {
    let cur = dir.startsWith('/') ? '' : '.';
    for (const part of dir.split('/')) {
      if (!part || part === '.') continue;
      cur = `${cur}/${part}`;
      const st = await sftpOps.statOrUndefined(s, cur);
      if (!st) await sftpOps.mkdirOnce(s, cur);
      else if (
        !st.isDirectory() &&
        !(
          options.followSymlinks &&
          st.isSymbolicLink() &&
          (await sftpOps.stat(s, cur)).isDirectory()
        )
      )
        throw new TransportError(
          'TRANSPORT_SFTP',
          `sftp mkdir ${dir}: ${cur} exists and is not a directory`,
        );
    }
  },

  /** rm -r over SFTP, not following symlinks. */
  async removeTree(s: SFTPWrapper, path: string): Promise<void> {
    const st = await sftpOps.statOrUndefined(s, path);
    if (!st) return;
    if (!st.isDirectory()) return sftpOps.unlink(s, path);
    for (const e of await sftpOps.readdir(s, path)) {
      if (e.filename === '.' || e.filename === '..') continue;
      await sftpOps.removeTree(s, `${path}/${e.filename}`);
    }
    await sftpOps.rmdir(s, path);
  },
};
