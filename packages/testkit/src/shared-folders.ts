import { chmodSync, mkdirSync } from 'node:fs';
import type { TempDir } from './temp-dir.js';

/**
 * Folders every user may write, with the sticky bit (1777), made with their parents: where the
 * runner (root, in the tests) and a job user both write, as they do in a site's shared folders.
 */
export function openFolders(...paths: readonly string[]): void {
  for (const p of paths) {
    mkdirSync(p, { recursive: true });
    chmodSync(p, 0o1777);
  }
}

/** `tmp` made enterable by every user (0755), and each of `dirs` open to all (openFolders). */
export function shareDirs(tmp: TempDir, dirs: readonly string[]): void {
  chmodSync(tmp.path, 0o755);
  openFolders(...dirs);
}
