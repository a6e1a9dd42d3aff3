import { createHash } from 'node:crypto';

/** The SHA-256 of `data` in hex, as ComputePods records files' hashes. */
export const sha256 = (data: string | Buffer): string =>
  createHash('sha256').update(data).digest('hex');
