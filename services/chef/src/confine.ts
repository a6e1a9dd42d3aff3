import { lstat, realpath } from 'node:fs/promises';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
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
 * The absolute path of workspace-relative `rel`, after checking that it stays inside the
 * workspace on disk: the deepest part of it that exists (the file, or the directory it would be
 * created in) must resolve, symlinks followed, inside the workspace's own real path. A lexically
 * clean path is not enough: `out` as a symlink to /home/alice makes `out/x.o` a file of hers,
 * and a dangling symlink is where a write would create a file outside. Throws
 * BuildRefusedError. What a command does between this check and its run is the runner's
 * confinement, not this one's.
 */
export async function confineLocal(workspace: string, rel: string): Promise<string> {
  const root = await realpath(workspace);
  const full = join(workspace, rel);
  const refuse = (why: string): never => {
    throw new BuildRefusedError(
      'CP_CHEF_UNSAFE_PATH',
      `path ${JSON.stringify(rel.slice(0, 300))} refused: ${why}; remove the symlink or point it inside the workspace`,
    );
  };
  if (projectPath(workspace, workspace, rel) === undefined)
    refuse('it is not inside the workspace');
  for (let p = full; ; p = dirname(p)) {
    const st = await lstat(p).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT' || err.code === 'ENOTDIR') return undefined;
      throw err;
    });
    if (!st) {
      if (p === workspace) refuse('the workspace does not exist');
      continue;
    }
    const real = await realpath(p).catch(() =>
      refuse(`${p === full ? 'it' : relative(workspace, p)} is a symlink that leads nowhere`),
    );
    const inside = relative(root, real);
    if (inside === '..' || inside.startsWith(`..${sep}`) || isAbsolute(inside))
      refuse(
        `${p === full ? 'it' : relative(workspace, p)} resolves to ${real}, outside the workspace`,
      );
    return full;
  }
}
