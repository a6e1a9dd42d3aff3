import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { BinaryMissingError } from './errors.js';

/** Finds an executable on PATH (plus the sbin dirs, where Debian puts daemons). */
export function which(binary: string, hint: string): string {
  if (binary.includes('/')) return binary;
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/sbin'];
  for (const dir of dirs) {
    if (!dir) continue;
    const candidate = join(dir, binary);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here; keep looking
    }
  }
  throw new BinaryMissingError(binary, hint);
}
