import { posix } from 'node:path';
import { z } from 'zod';
import { UnsafePathError } from './errors.js';

/**
 * Returns the normalised project-relative POSIX path, or throws UnsafePathError.
 * Every path that arrives from outside (a message, a REST call, a rule) goes through here
 * before it touches a filesystem, so `../` can never leave the workspace.
 */
export function checkRelativePath(path: string): string {
  if (path.length === 0) throw new UnsafePathError(path, 'empty');
  if (path.includes('\0')) throw new UnsafePathError(path, 'contains a NUL byte');
  if (path.includes('\\')) throw new UnsafePathError(path, 'contains a backslash; use "/"');
  if (posix.isAbsolute(path))
    throw new UnsafePathError(path, 'absolute; give it relative to the project root');
  const norm = posix.normalize(path);
  if (norm === '..' || norm.startsWith('../'))
    throw new UnsafePathError(path, 'leaves the project root');
  if (norm === '.' || norm.endsWith('/'))
    throw new UnsafePathError(path, 'names a directory, not a file');
  return norm;
}

export const RelativePath = z.string().transform((p, ctx) => {
  try {
    return checkRelativePath(p);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
    return z.NEVER;
  }
});
