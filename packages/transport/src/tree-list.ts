import { lstat, readdir } from 'node:fs/promises';

import type { SFTPWrapper } from 'ssh2';
import { TransportError } from './errors.js';
import { transferMode } from './file-mode.js';
import { assertSafeEntryName, assertSafeRelativePath } from './safe-path.js';
import { sftpOps } from './sftp-ops.js';

export interface TreeFile {
  /** '/'-separated path relative to the tree root, checked by assertSafeRelativePath. */
  readonly rel: string;
  readonly size: number;
  readonly mode: number;
}

export interface TreeList {
  /** Relative directories, parents before children. */
  readonly dirs: string[];
  readonly files: TreeFile[];
}

function unsupported(path: string, what: string): TransportError {
  return new TransportError(
    'TRANSPORT_UNSUPPORTED_FILE',
    `${path} is a ${what}; only regular files and directories are transferred, so replace it with a copy or leave it out`,
  );
}

function parentsOf(rels: readonly string[]): string[] {
  const dirs = new Set<string>();
  for (const rel of rels) {
    const parts = rel.split('/');
    for (let i = 1; i < parts.length; i++) dirs.add(parts.slice(0, i).join('/'));
  }
  return [...dirs].sort((a, b) => a.split('/').length - b.split('/').length || a.localeCompare(b));
}

type Kind = 'dir' | 'file' | 'symlink' | 'other';
interface Entry {
  readonly kind: Kind;
  readonly size: number;
  readonly mode: number;
}

/** What a listing needs of an lstat, local (fs.Stats) or remote (ssh2's Stats). */
function entryOf(st: {
  isDirectory(): boolean;
  isFile(): boolean;
  isSymbolicLink(): boolean;
  size: number;
  mode: number;
}): Entry {
  const kind: Kind = st.isDirectory()
    ? 'dir'
    : st.isFile()
      ? 'file'
      : st.isSymbolicLink()
        ? 'symlink'
        : 'other';
  return { kind, size: st.size, mode: transferMode(st.mode) };
}

async function listWith(
  root: string,
  only: readonly string[] | undefined,
  stat: (abs: string) => Promise<Entry>,
  entries: (abs: string) => Promise<string[]>,
): Promise<TreeList> {
  const files: TreeFile[] = [];
  const dirs: string[] = [];
  if (only) {
    for (const rel of new Set(only.map(assertSafeRelativePath))) {
      const st = await stat(`${root}/${rel}`);
      if (st.kind !== 'file')
        throw unsupported(
          `${root}/${rel}`,
          st.kind === 'dir' ? 'directory (list its files)' : st.kind,
        );
      files.push({ rel, size: st.size, mode: st.mode });
    }
    return { dirs: parentsOf(files.map((f) => f.rel)), files };
  }
  const walk = async (relDir: string) => {
    const abs = relDir ? `${root}/${relDir}` : root;
    for (const name of (await entries(abs)).sort()) {
      assertSafeEntryName(name, abs);
      const rel = relDir ? `${relDir}/${name}` : name;
      const st = await stat(`${root}/${rel}`);
      if (st.kind === 'dir') {
        dirs.push(rel);
        await walk(rel);
      } else if (st.kind === 'file') files.push({ rel, size: st.size, mode: st.mode });
      else throw unsupported(`${root}/${rel}`, st.kind);
    }
  };
  await walk('');
  return { dirs, files };
}

/** Lists a local tree (or just the given relative files), refusing symlinks and specials. */
export async function listLocalTree(root: string, only?: readonly string[]): Promise<TreeList> {
  return listWith(
    root,
    only,
    async (abs) => entryOf(await lstat(abs)),
    async (abs) => (await readdir(abs)).map((n) => n),
  ).catch((err: unknown) => {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new TransportError('TRANSPORT_SFTP', `local ${(err as Error).message}`, { cause: err });
    }
    throw err;
  });
}

/** Lists a remote tree over SFTP; every name the server returns is checked before use. */
export async function listRemoteTree(
  sftp: SFTPWrapper,
  root: string,
  only?: readonly string[],
): Promise<TreeList> {
  return listWith(
    root,
    only,
    async (abs) => entryOf(await sftpOps.lstat(sftp, abs)),
    async (abs) =>
      (await sftpOps.readdir(sftp, abs))
        .map((e) => e.filename)
        .filter((n) => n !== '.' && n !== '..'),
  );
}
