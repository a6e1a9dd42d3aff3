import { accessSync, constants } from 'node:fs';
import { BinaryMissingError } from './errors.js';
import { which } from './which.js';

/**
 * Like which(), but also checks a name given as a path: which() trusts those as they are, and a
 * daemon at a fixed path (/usr/sbin/sshd) that is not installed must still fail clearly.
 */
export function requireBinary(nameOrPath: string, hint: string): string {
  const found = which(nameOrPath, hint);
  try {
    accessSync(found, constants.X_OK);
  } catch (cause) {
    throw new BinaryMissingError(nameOrPath, hint, { cause });
  }
  return found;
}
