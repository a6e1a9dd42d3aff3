import { posix } from 'node:path';
import { z } from 'zod';
import { UnsafePathError } from './errors.js';

/**
 * The longest project-relative path accepted, in UTF-8 bytes. Paths become KV keys (kvKey: up
 * to 3 characters a byte) inside NATS subjects, which a default nats-server refuses over 4 KiB
 * on its control line (and closes the connection): 1024 bytes keep every key under 3.1 KiB.
 * It is checked before normalising, whose cost grows faster than the length ("../" x 100,000
 * took seconds).
 */
export const MAX_PATH_BYTES = 1024;

/**
 * Returns the normalised project-relative POSIX path, or throws UnsafePathError.
 * Every path that arrives from outside (a message, a REST call, a rule) goes through here
 * before it touches a filesystem, so `../` can never leave the workspace.
 */
export function checkRelativePath(path: string): string {
  if (path.length === 0) throw unsafe(path, 'empty');
  // Characters first (a UTF-8 byte count reads the whole string), then bytes.
  if (path.length > MAX_PATH_BYTES || Buffer.byteLength(path, 'utf8') > MAX_PATH_BYTES)
    throw unsafe(path.slice(0, 80), `longer than ${MAX_PATH_BYTES} bytes; use a shorter path`);
  if (path.includes('\0')) throw unsafe(path, 'contains a NUL byte');
  if (path.includes('\\')) throw unsafe(path, 'contains a backslash; use "/"');
  if (posix.isAbsolute(path)) throw unsafe(path, 'absolute; give it relative to the project root');
  const norm = posix.normalize(path);
  if (norm === '..' || norm.startsWith('../')) throw unsafe(path, 'leaves the project root');
  if (norm === '.' || norm.endsWith('/')) throw unsafe(path, 'names a directory, not a file');
  return norm;
}

function unsafe(path: string, reason: string): UnsafePathError {
  return new UnsafePathError(path, `unsafe path ${JSON.stringify(path)}: ${reason}`);
}

export const RelativePath = z.string().transform((p, ctx) => {
  try {
    return checkRelativePath(p);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
    return z.NEVER;
  }
});
