import type { SshPool } from '@computepods/transport';

/** The SFTP session type, taken from the pool's API so this package needs no ssh2 types. */
export type Sftp = Parameters<Parameters<SshPool['sftp']>[1]>[0];
type Attrs = Awaited<ReturnType<typeof lstat>>;

// SFTP status codes (draft-ietf-secsh-filexfer-02) that ssh2 puts in err.code.
const NO_SUCH_FILE = 2;

function call<T>(run: (cb: (err: Error | null | undefined, v: T) => void) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => run((err, v) => (err ? reject(err) : resolve(v))));
}

export function isNoSuchFile(err: unknown): boolean {
  return (err as { code?: unknown })?.code === NO_SUCH_FILE;
}

export function lstat(s: Sftp, path: string) {
  return call<Parameters<Parameters<Sftp['lstat']>[1]>[1]>((cb) => s.lstat(path, cb));
}

/** lstat, or undefined when nothing is there. */
export async function lstatOrUndefined(s: Sftp, path: string): Promise<Attrs | undefined> {
  try {
    return await lstat(s, path);
  } catch (err) {
    if (isNoSuchFile(err)) return undefined;
    throw err;
  }
}

export function stat(s: Sftp, path: string) {
  return call<Parameters<Parameters<Sftp['stat']>[1]>[1]>((cb) => s.stat(path, cb));
}

export function realpath(s: Sftp, path: string): Promise<string> {
  return call<string>((cb) => s.realpath(path, cb));
}

export function mkdir(s: Sftp, path: string): Promise<void> {
  return call<void>((cb) => s.mkdir(path, { mode: 0o755 }, (err) => cb(err, undefined)));
}

export function unlink(s: Sftp, path: string): Promise<void> {
  return call<void>((cb) => s.unlink(path, (err) => cb(err, undefined)));
}

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
      throw new Error(`${cur} exists on the pod and is not a directory`);
  }
}
