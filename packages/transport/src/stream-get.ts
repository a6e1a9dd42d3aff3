import { createHash } from 'node:crypto';
import { writeSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { TransportError } from './errors.js';
import { transferMode } from './file-mode.js';
import type { Hashed, Progress } from './hashed-copy.js';
import { commandPath } from './safe-path.js';
import { shellQuote } from './shell-quote.js';
import type { SshPool } from './ssh-pool.js';
import { endpointOf, type SshTarget } from './target.js';

/**
 * Downloads `remote` (of `size` bytes, by a stat just before) into the new local file `local`
 * (created with `mode`, never an existing one) over one exec channel running `cat`. Each chunk
 * the channel delivers (32 KiB at most) is written at its offset and hashed on this thread,
 * before the next is taken: nothing is copied, nothing goes to another thread, the channel never
 * pauses. No SFTP requests either: ssh2's SFTP reads cost ~3 s of client CPU per GiB here (the
 * SFTP path is getHashed). `remote` reaches the shell only as one quoted argument (commandPath: no
 * control characters, never read as an option). A file that read other than `size` bytes changed
 * meanwhile: a retryable error. Undefined when the pod has no `cat` (exit 127): the caller takes
 * the SFTP path.
 *
 * The writes block this thread: a page-cache write of 32 KiB takes microseconds, and a disk that
 * throttles writes holds this process's event loop for as long. Against the way before (chunks
 * copied into a ring of 1 MiB blocks of shared memory, each written by libuv's pool and then
 * hashed in place by the hashing thread), 1 GiB down took 2.60 and 2.93 s against 3.26 s, with
 * 3.2 and 3.5 s of client CPU against 4.4 s (`pnpm bench ssh`, best of 3, quiet, session 29;
 * `sftp get` 2.66-2.83 s in the same runs). The ring with the hash on this thread instead of the
 * hashing thread was slower still (3.46 s): a 1 MiB block's hash holds ssh2's packets up.
 */
export async function getStreamed(
  pool: SshPool,
  target: SshTarget,
  remote: string,
  size: number,
  local: string,
  mode: number,
  onProgress?: Progress,
): Promise<Hashed | undefined> {
  const fh = await open(local, 'wx', transferMode(mode));
  try {
    const sink = chunkSink(fh.fd, local, size, onProgress);
    const command = `cat -- ${shellQuote(commandPath(remote, 'remote file'))}`;
    const res = await pool.exec(target, command, { stdout: sink.take });
    if (res.code === 127) return undefined;
    const where = `${endpointOf(target)}:${remote}`;
    if (res.code !== 0) {
      throw new TransportError(
        'TRANSPORT_REMOTE_COMMAND_FAILED',
        `streaming ${where} to ${local} failed (${res.code ?? res.signal}): ${res.stderr.trim()}`,
        { endpoint: endpointOf(target) },
      );
    }
    const bytes = sink.taken();
    if (bytes !== size)
      throw new TransportError(
        'TRANSPORT_REMOTE_COMMAND_FAILED',
        `get ${where}: read ${bytes} bytes of the ${size} its stat gave (it changed meanwhile)`,
        { retryable: true },
      );
    return { sha256: sink.digest(), bytes };
  } finally {
    await fh.close();
  }
}

/**
 * Writes each chunk at its offset of the file `local`, open as `fd`, and hashes it, in the order
 * taken. A failed write throws (pool.exec kills the command and fails with it).
 */
function chunkSink(
  fd: number,
  local: string,
  size: number,
  onProgress?: Progress,
): { take: (chunk: Buffer) => undefined; taken: () => number; digest: () => string } {
  const hash = createHash('sha256');
  let taken = 0;
  return {
    take(chunk) {
      for (let off = 0; off < chunk.length; ) {
        const n = writeSync(fd, chunk, off, chunk.length - off, taken + off);
        // Never for a regular file (an error throws): no endless loop if it ever were.
        if (n <= 0)
          throw new TransportError(
            'TRANSPORT_UNSUPPORTED_FILE',
            `${local}: write(2) took none of ${chunk.length - off} bytes`,
          );
        off += n;
      }
      hash.update(chunk);
      taken += chunk.length;
      onProgress?.(taken, size);
      return undefined;
    },
    taken: () => taken,
    digest: () => hash.digest('hex'),
  };
}
