import { lstatSync, realpathSync, type Stats } from 'node:fs';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { checkRelativePath } from '@computepods/protocol';
import { BuildRefusedError } from './errors.js';

/**
 * The project-relative path of `path` (resolved against `base`, an absolute directory), or
 * undefined when it lies outside the workspace: a dependency record written by a tool is not
 * trusted to stay inside it (`../../etc/passwd`, an absolute system header, a hostile PWD line).
 */
export function projectPath(workspace: string, base: string, path: string): string | undefined {
  const rel = relative(workspace, resolve(base, path));
  if (rel === '' || isAbsolute(rel) || rel === '..' || rel.startsWith(`..${sep}`)) return undefined;
  try {
    return checkRelativePath(rel.split(sep).join('/'));
  } catch {
    return undefined;
  }
}

/** projectPath for each, keeping only those inside the workspace. */
export function confineAll(workspace: string, base: string, paths: readonly string[]): string[] {
  const out: string[] = [];
  for (const p of paths) {
    const rel = projectPath(workspace, base, p);
    if (rel !== undefined) out.push(rel);
  }
  return out;
}

/**
 * Checks workspace-relative paths stay inside the workspace on disk: the deepest part of a path
 * that exists (the file, or the directory it would be created in) must resolve, symlinks
 * followed, inside the workspace's own real path. A lexically clean path is not enough: `out` as
 * a symlink to /home/alice makes `out/x.o` a file of hers, and a dangling symlink is where a
 * write would create a file outside. Refusals are BuildRefusedError (CP_CHEF_UNSAFE_PATH).
 *
 * One Confinement answers for one moment of a build: its answers (per path, and the real path
 * of each directory met) are kept, so the workspace's real path and each distinct directory's
 * are resolved once, and a path costs one lstat unless it is itself a symlink. A build uses one
 * from its admission until its task is submitted (only the chef writes its paths meanwhile:
 * downloads renamed into place, output folders made) and a new one once the task has ended (the
 * command may have left symlinks). What a command does between a check and its run is the
 * runner's confinement, not this one's.
 */
export class Confinement {
  readonly #workspace: string;
  readonly #dirs = new Map<string, string | Error>();
  readonly #paths = new Map<string, Promise<string>>();

  constructor(workspace: string) {
    this.#workspace = workspace;
  }

  /** The absolute path of workspace-relative `rel`, once it is known to stay inside. */
  check(rel: string): Promise<string> {
    let p = this.#paths.get(rel);
    if (!p) {
      try {
        p = Promise.resolve(this.#check(rel));
      } catch (err) {
        p = Promise.reject(err);
        // Rejections are answers too; a caller that drops one must not crash the process.
        p.catch(() => undefined);
      }
      this.#paths.set(rel, p);
    }
    return p;
  }

  /**
   * With synchronous calls (lstat, realpath: metadata, microseconds each on a local disk):
   * through libuv's thread pool each cost tens of microseconds of CPU in hand-offs between
   * threads, and a compile's build checks a handful of paths twice (pnpm bench cbuild, #15).
   */
  #check(rel: string): string {
    const workspace = this.#workspace;
    const full = join(workspace, rel);
    const refuse = (why: string): never => {
      throw new BuildRefusedError(
        'CP_CHEF_UNSAFE_PATH',
        `path ${JSON.stringify(rel.slice(0, 300))} refused: ${why}; remove the symlink or point it inside the workspace`,
      );
    };
    // A path in normal form (a rule's, a request's: checked so already) stays inside lexically.
    if (!isNormal(rel) && projectPath(workspace, workspace, rel) === undefined)
      refuse('it is not inside the workspace');
    const root = this.#realDir(workspace);
    if (root instanceof Error) return refuse('the workspace does not exist');
    for (let p = full; ; p = dirname(p)) {
      let st: Stats | undefined;
      try {
        st = lstatSync(p, { throwIfNoEntry: false });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOTDIR') throw err;
      }
      if (!st) {
        if (p === workspace) refuse('the workspace does not exist');
        continue;
      }
      const name = () => (p === full ? 'it' : relative(workspace, p));
      // Not a symlink: its real path is its own folder's (resolved once per folder) plus its
      // name. A symlink (the path itself, or a folder on the way) is followed each time.
      let real: string | Error;
      if (st.isSymbolicLink()) real = realpathOrError(p);
      else if (st.isDirectory()) real = this.#realDir(p);
      else {
        const dir = this.#realDir(dirname(p));
        real = dir instanceof Error ? dir : join(dir, basename(p));
      }
      if (real instanceof Error) return refuse(`${name()} is a symlink that leads nowhere`);
      // Both real paths (absolute, no `.` or `..` parts, no trailing separator): inside is below.
      if (real !== root && !real.startsWith(root === sep ? root : `${root}${sep}`))
        refuse(`${name()} resolves to ${real}, outside the workspace`);
      return full;
    }
  }

  /** The real path of a directory (or why it has none), resolved once. */
  #realDir(dir: string): string | Error {
    let r = this.#dirs.get(dir);
    if (r === undefined) {
      r = realpathOrError(dir);
      this.#dirs.set(dir, r);
    }
    return r;
  }
}

/** True when `rel` is a project-relative path in normal form (checkRelativePath returns it as is). */
function isNormal(rel: string): boolean {
  try {
    return checkRelativePath(rel) === rel;
  } catch {
    return false;
  }
}

function realpathOrError(path: string): string | Error {
  try {
    return realpathSync.native(path);
  } catch (err) {
    return err as Error;
  }
}

/** One path checked on its own (a Confinement of one): see Confinement. */
export function confineLocal(workspace: string, rel: string): Promise<string> {
  return new Confinement(workspace).check(rel);
}
