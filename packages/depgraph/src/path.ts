import { InvalidPathError } from './errors.js';

// Leading or trailing "/", an empty segment, or a "." / ".." segment.
const NOT_NORMAL = /^\/|\/$|\/\/|(?:^|\/)\.\.?(?:\/|$)/;

export function isNormalPath(path: string): boolean {
  return path.length > 0 && !NOT_NORMAL.test(path);
}

/** Throws unless `path` is a normalised project-relative path. */
export function checkPath(path: string): void {
  if (typeof path === 'string' && isNormalPath(path)) return;
  if (typeof path !== 'string' || path.length === 0) throw new InvalidPathError(path, 'empty');
  if (path.startsWith('/')) throw new InvalidPathError(path, 'must be project-relative');
  const bad = path.split('/').find((s) => s === '' || s === '.' || s === '..');
  throw new InvalidPathError(path, bad ? `"${bad}" segment` : 'empty segment');
}

/** Extension used to index paths and patterns: text after the last "." of the last segment. */
export function extOf(path: string): string {
  const dot = path.lastIndexOf('.');
  return dot > path.lastIndexOf('/') ? path.slice(dot + 1) : '';
}
