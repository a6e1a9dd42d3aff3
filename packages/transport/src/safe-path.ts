import { UnsafePathError } from './errors.js';

/**
 * Checks a relative name inside a transferred tree: '/'-separated, no '..' or '.' segment, not
 * absolute, no empty segment, no NUL or backslash. Names from callers and from a remote
 * directory listing both pass through here, so neither can write outside the tree.
 */
export function assertSafeRelativePath(rel: string): string {
  const fail = (why: string): never => {
    throw new UnsafePathError(
      'TRANSPORT_UNSAFE_PATH',
      rel,
      `refusing path ${JSON.stringify(rel)}: ${why}; give a path relative to the tree without '..'`,
    );
  };
  if (rel.length === 0) fail('it is empty');
  if (rel.includes('\0')) fail('it holds NUL');
  if (rel.includes('\\')) fail('it holds a backslash');
  if (rel.startsWith('/')) fail('it is absolute');
  for (const seg of rel.split('/')) {
    if (seg === '..') fail("it climbs out with '..'");
    if (seg === '.' || seg === '') fail("it has an empty or '.' segment");
  }
  return rel;
}

/** A single directory entry name as a server returned it: one segment, nothing more. */
export function assertSafeEntryName(name: string, dir: string): string {
  if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) {
    throw new UnsafePathError(
      'TRANSPORT_UNSAFE_PATH',
      name,
      `refusing directory entry ${JSON.stringify(name)} listed in ${dir}: not a plain file name`,
    );
  }
  return name;
}
