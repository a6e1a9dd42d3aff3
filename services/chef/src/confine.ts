import { isAbsolute, relative, resolve, sep } from 'node:path';
import { checkRelativePath } from '@computepods/protocol';

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
