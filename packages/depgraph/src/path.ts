import { InvalidPathError } from './errors.js';

/** Throws unless `path` is a normalised project-relative path. */
export function checkPath(path: string): void {
  if (typeof path !== 'string' || path.length === 0) throw new InvalidPathError(path, 'empty');
  if (path.startsWith('/')) throw new InvalidPathError(path, 'must be project-relative');
  for (const segment of path.split('/')) {
    if (segment === '') throw new InvalidPathError(path, 'empty segment');
    if (segment === '..' || segment === '.') {
      throw new InvalidPathError(path, `"${segment}" segment`);
    }
  }
}

/** Extension used to index paths and patterns: text after the last "." of the last segment. */
export function extOf(path: string): string {
  const dot = path.lastIndexOf('.');
  return dot > path.lastIndexOf('/') ? path.slice(dot + 1) : '';
}
