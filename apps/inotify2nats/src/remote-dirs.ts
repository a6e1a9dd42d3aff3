import { sftpOps } from '@computepods/transport';
import { UnsafeSyncPathError } from './errors.js';
import type { Sftp } from './sftp-session.js';

function inside(root: string, path: string): boolean {
  return path === root || path.startsWith(root.endsWith('/') ? root : `${root}/`);
}

/**
 * Checks (and makes) directories under the pod's remote root one component at a time, so a
 * symlink that points out of the root is found BEFORE anything is created or written through
 * it. One instance per batch: the pod's tree may change between batches.
 */
export class RemoteDirs {
  readonly #seen = new Map<string, Promise<boolean>>();

  constructor(
    /** The remote root, resolved by the server (realpath). */
    readonly root: string,
  ) {}

  /**
   * Resolves true when `relDir` (project-relative, '' for the root) is a directory inside the
   * root, false when it is missing and `create` is false. Throws UnsafeSyncPathError when a
   * component leaves the root or is not a directory.
   */
  ensure(s: Sftp, relDir: string, create: boolean, forPath: string): Promise<boolean> {
    if (relDir === '') return Promise.resolve(true);
    const key = `${create ? '+' : '?'}${relDir}`;
    let p = this.#seen.get(key);
    if (!p) {
      p = this.#walk(s, relDir, create, forPath);
      // A failure is about one file's path: do not let it stick to the next caller.
      p.catch(() => this.#seen.delete(key));
      this.#seen.set(key, p);
    }
    return p;
  }

  async #walk(s: Sftp, relDir: string, create: boolean, forPath: string): Promise<boolean> {
    const i = relDir.lastIndexOf('/');
    if (i >= 0 && !(await this.ensure(s, relDir.slice(0, i), create, forPath))) return false;
    const abs = `${this.root}/${relDir}`;
    const st = await sftpOps.statOrUndefined(s, abs);
    if (!st) {
      if (!create) return false;
      await sftpOps.mkdirOnce(s, abs);
      return true;
    }
    if (st.isDirectory()) return true;
    if (st.isSymbolicLink()) {
      const real = await sftpOps.realpath(s, abs);
      if (!inside(this.root, real)) {
        throw new UnsafeSyncPathError(
          forPath,
          `on the pod, ${abs} is a symlink to ${real}, outside the remote root ${this.root}`,
        );
      }
      if ((await sftpOps.stat(s, abs)).isDirectory()) return true;
    }
    throw new UnsafeSyncPathError(
      forPath,
      `on the pod, ${abs} is not a directory, so nothing can be put under it`,
    );
  }
}
