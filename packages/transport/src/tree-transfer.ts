import { randomBytes } from 'node:crypto';
import { chmod, mkdir, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import pMap from 'p-map';
import type { SFTPWrapper } from 'ssh2';
import { TransportError, UnsafePathError, VerifyError } from './errors.js';
import { sha256File, sha256Remote, sha256Sftp } from './hashing.js';
import { commandPath } from './safe-path.js';
import { sftpOps } from './sftp-ops.js';
import { shellQuote } from './shell-quote.js';
import type { SshPool } from './ssh-pool.js';
import { endpointOf, type SshTarget } from './target.js';
import { listLocalTree, listRemoteTree, type TreeList } from './tree-list.js';

export interface TreeTransferOptions {
  /**
   * When the destination exists: 'replace' (default) moves it aside, renames the verified
   * copy into place, then deletes the old one; 'fail' refuses before transferring anything.
   */
  readonly ifExists?: 'replace' | 'fail';
  /** Transfer only these relative files (parents are created); '..' and absolute paths are refused. */
  readonly files?: readonly string[];
  /**
   * 'sha256sum' (default) hashes on the remote host in one exec per batch; 'reread' reads each
   * remote file back over SFTP. sha256sum falls back to reread when the host lacks it.
   */
  readonly verify?: 'reread' | 'sha256sum';
  /** Files in flight at once on the SFTP session. Default 4. */
  readonly concurrency?: number;
}

export interface TreeTransferReport {
  readonly files: number;
  readonly dirs: number;
  readonly bytes: number;
  /** True when an existing destination was swapped out. */
  readonly replaced: boolean;
  readonly verifiedBy: 'reread' | 'sha256sum';
  /** SHA-256 of every file, by relative path. */
  readonly sha256: Readonly<Record<string, string>>;
}

function tmpSuffix(kind: 'old' | 'tmp'): string {
  return `.${kind}-${randomBytes(6).toString('hex')}`;
}

function trimDir(dir: string, what: string): string {
  const d = dir.replace(/\/+$/, '');
  if (d === '' || d === '.' || d.includes('\0')) {
    throw new UnsafePathError(
      dir,
      `${what} ${JSON.stringify(dir)} is not a directory we may replace`,
      'TRANSPORT_UNSAFE_PATH',
    );
  }
  return d;
}

function parentOf(path: string): string | undefined {
  const i = path.lastIndexOf('/');
  if (i < 0) return undefined;
  return i === 0 ? '/' : path.slice(0, i);
}

/**
 * Hashes remote files, with no channel held by the caller: tree transfers never nest one
 * channel inside another, so they work even with one channel per connection.
 */
async function remoteHashes(
  pool: SshPool,
  target: SshTarget,
  dir: string,
  rels: readonly string[],
  mode: 'reread' | 'sha256sum',
  concurrency: number,
  bytes: number,
): Promise<{ hashes: Map<string, string>; by: 'reread' | 'sha256sum' }> {
  if (mode === 'sha256sum') {
    const hashes = await sha256Remote(pool, target, dir, rels, { bytes });
    if (hashes) return { hashes, by: 'sha256sum' };
  }
  const list = await pool.sftp(target, (sftp) =>
    pMap(rels, async (rel) => [rel, await sha256Sftp(sftp, `${dir}/${rel}`)] as const, {
      concurrency,
    }),
  );
  return { hashes: new Map(list), by: 'reread' };
}

/**
 * Uploads a local tree to remoteDir: everything goes into a sibling `remoteDir.tmp-XXXX`, each
 * file's SHA-256 is checked against the local one, and only then is the directory renamed
 * into place. Readers see the old tree, briefly none, or the new one — never a mix.
 */
export async function uploadTree(
  pool: SshPool,
  target: SshTarget,
  localDir: string,
  remoteDir: string,
  options: TreeTransferOptions = {},
): Promise<TreeTransferReport> {
  const dest = trimDir(remoteDir, 'remote directory');
  const concurrency = options.concurrency ?? 4;
  const list = await listLocalTree(localDir, options.files);
  const local = new Map(
    await pMap(list.files, async (f) => [f.rel, await sha256File(join(localDir, f.rel))] as const, {
      concurrency,
    }),
  );
  const tmp = `${dest}${tmpSuffix('tmp')}`;
  let created = false;
  try {
    const existed = await pool.sftp(target, async (sftp) => {
      const existing = await sftpOps.statOrUndefined(sftp, dest);
      if (existing && options.ifExists === 'fail') {
        throw new TransportError(
          'TRANSPORT_DESTINATION_EXISTS',
          `${endpointOf(target)}:${dest} exists; remove it or pass ifExists: 'replace'`,
        );
      }
      const parent = parentOf(dest);
      if (parent) await sftpOps.mkdirp(sftp, parent);
      await sftpOps.mkdir(sftp, tmp, 0o755);
      created = true;
      for (const d of list.dirs) await sftpOps.mkdir(sftp, `${tmp}/${d}`, 0o755);
      await pMap(
        list.files,
        (f) => sftpOps.fastPut(sftp, join(localDir, f.rel), `${tmp}/${f.rel}`, f.mode),
        { concurrency },
      );
      return existing !== undefined;
    });
    const { hashes, by } = await remoteHashes(
      pool,
      target,
      tmp,
      list.files.map((f) => f.rel),
      options.verify ?? 'sha256sum',
      concurrency,
      list.files.reduce((n, f) => n + f.size, 0),
    );
    for (const [rel, want] of local) {
      const got = hashes.get(rel) ?? '(missing)';
      if (got !== want) throw new VerifyError(`${endpointOf(target)}:${dest}/${rel}`, want, got);
    }
    const old = await pool.sftp(target, (sftp) => swapRemote(sftp, tmp, dest, existed));
    created = false;
    if (old) await removeRemote(pool, target, old);
    return report(list, local, existed, by);
  } catch (err) {
    if (created) await removeRemote(pool, target, tmp).catch(() => undefined);
    throw err;
  }
}

/**
 * Downloads remoteDir into localDir the same way: into `localDir.tmp-XXXX`, each file checked
 * against the SHA-256 the remote host computed before the transfer, then renamed into place.
 * Every name the server lists is checked, so a hostile server cannot write outside localDir.
 */
export async function downloadTree(
  pool: SshPool,
  target: SshTarget,
  remoteDir: string,
  localDir: string,
  options: TreeTransferOptions = {},
): Promise<TreeTransferReport> {
  const src = trimDir(remoteDir, 'remote directory');
  const dest = trimDir(localDir, 'local directory');
  const concurrency = options.concurrency ?? 4;
  const existing = await stat(dest).catch(() => undefined);
  if (existing && options.ifExists === 'fail') {
    throw new TransportError(
      'TRANSPORT_DESTINATION_EXISTS',
      `${dest} exists; remove it or pass ifExists: 'replace'`,
    );
  }
  const list = await pool.sftp(target, (sftp) => listRemoteTree(sftp, src, options.files));
  const rels = list.files.map((f) => f.rel);
  const { hashes, by } = await remoteHashes(
    pool,
    target,
    src,
    rels,
    options.verify ?? 'sha256sum',
    concurrency,
    list.files.reduce((n, f) => n + f.size, 0),
  );
  const tmp = `${dest}${tmpSuffix('tmp')}`;
  try {
    await mkdir(dirname(dest), { recursive: true });
    await mkdir(tmp);
    for (const d of list.dirs) await mkdir(join(tmp, d));
    await pool.sftp(target, (sftp) =>
      pMap(
        list.files,
        async (f) => {
          const to = join(tmp, f.rel);
          await sftpOps.fastGet(sftp, `${src}/${f.rel}`, to);
          await chmod(to, f.mode);
        },
        { concurrency },
      ),
    );
    const local = new Map<string, string>();
    for (const f of list.files) {
      const got = await sha256File(join(tmp, f.rel));
      const want = hashes.get(f.rel) ?? '(missing)';
      if (got !== want) throw new VerifyError(`${dest}/${f.rel}`, want, got);
      local.set(f.rel, got);
    }
    await swapLocal(tmp, dest, existing !== undefined);
    return report(list, local, existing !== undefined, by);
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
}

function report(
  list: TreeList,
  hashes: Map<string, string>,
  replaced: boolean,
  verifiedBy: 'reread' | 'sha256sum',
): TreeTransferReport {
  return {
    files: list.files.length,
    dirs: list.dirs.length,
    bytes: list.files.reduce((n, f) => n + f.size, 0),
    replaced,
    verifiedBy,
    sha256: Object.fromEntries(hashes),
  };
}

/**
 * rename(2) cannot replace a non-empty directory and SFTP has no exchange, so the old tree
 * is renamed aside first and put back if the second rename fails. Returns the old tree's
 * new name, for the caller to delete once the channel is free.
 */
async function swapRemote(
  sftp: SFTPWrapper,
  tmp: string,
  dest: string,
  exists: boolean,
): Promise<string | undefined> {
  if (!exists) {
    await sftpOps.rename(sftp, tmp, dest);
    return undefined;
  }
  const old = `${dest}${tmpSuffix('old')}`;
  await sftpOps.rename(sftp, dest, old);
  try {
    await sftpOps.rename(sftp, tmp, dest);
  } catch (err) {
    await sftpOps.rename(sftp, old, dest).catch(() => undefined);
    throw err;
  }
  return old;
}

async function removeRemote(pool: SshPool, target: SshTarget, path: string): Promise<void> {
  // One `rm -rf` round trip instead of an SFTP request per file.
  await pool.exec(target, `rm -rf -- ${shellQuote(commandPath(path, 'directory to remove'))}`);
}

async function swapLocal(tmp: string, dest: string, exists: boolean): Promise<void> {
  if (!exists) return rename(tmp, dest);
  const old = `${dest}${tmpSuffix('old')}`;
  await rename(dest, old);
  try {
    await rename(tmp, dest);
  } catch (err) {
    await rename(old, dest).catch(() => undefined);
    throw err;
  }
  await rm(old, { recursive: true, force: true });
}
