import { UnsafePathError } from './errors.js';

// A newline in a path splits a command's output (sha256sum, ls) into lines we would misread,
// and no file a build makes needs one.
const CONTROL_CHARS = /[\u0000-\u001f\u007f]/;

/**
 * Checks a relative name inside a transferred tree: '/'-separated, no '..' or '.' segment, not
 * absolute, no empty segment, no NUL or backslash. Names from callers and from a remote
 * directory listing both pass through here, so neither can write outside the tree.
 */
export function assertSafeRelativePath(rel: string): string {
  const fail = (why: string): never => {
    throw new UnsafePathError(
      rel,
      `refusing path ${JSON.stringify(rel)}: ${why}; give a path relative to the tree without '..'`,
      'TRANSPORT_UNSAFE_PATH',
    );
  };
  if (rel.length === 0) fail('it is empty');
  if (rel.includes('\0')) fail('it holds NUL');
  if (CONTROL_CHARS.test(rel)) fail('it holds a control character (newline, tab, ...)');
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
      name,
      `refusing directory entry ${JSON.stringify(name)} listed in ${dir}: not a plain file name`,
      'TRANSPORT_UNSAFE_PATH',
    );
  }
  return name;
}

/**
 * A path as one argument of a command (cp, mv, sha256sum, tail, rm ... over sudo or SSH):
 * control characters are refused, and a relative path starting with '-' is given as './-…',
 * so no command can read it as an option, with or without a '--' before it. `what` names the
 * path's origin for the message (e.g. 'files.outputs').
 */
export function commandPath(path: string, what = 'path'): string {
  if (path === '' || CONTROL_CHARS.test(path)) {
    throw new UnsafePathError(
      path,
      `refusing ${what} ${JSON.stringify(path)}: ${path === '' ? 'it is empty' : 'it holds a control character (newline, tab, NUL ...)'}; rename the file`,
      'TRANSPORT_UNSAFE_PATH',
    );
  }
  return path.startsWith('-') ? `./${path}` : path;
}
