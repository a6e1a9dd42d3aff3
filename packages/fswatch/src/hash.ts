import { HashError } from './errors.js';
import { HASH_BUFFER_BYTES, sharedPool } from './pool.js';

export interface HashFileOptions {
  /** Read size. Default 1 MiB. */
  bufferBytes?: number;
}

/**
 * Streaming SHA-256 (lower-case hex) of a file's bytes, computed in a worker thread so a
 * large file never blocks the event loop. Throws HashError naming the file on failure.
 */
export async function hashFile(path: string, options: HashFileOptions = {}): Promise<string> {
  const r = await sharedPool().hash(path, options.bufferBytes ?? HASH_BUFFER_BYTES);
  if (r.kind === 'hashed' || r.kind === 'unstable') return r.sha256;
  if (r.kind === 'error') throw new HashError(path, r.errno);
  throw new HashError(path, r.kind === 'missing' ? 'ENOENT' : 'EISDIR');
}
