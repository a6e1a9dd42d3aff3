import { type FileHandle, open } from 'node:fs/promises';
import { TransportError } from './errors.js';
import { transferMode } from './file-mode.js';
import { type StreamHash, streamHash } from './hash-worker.js';
import type { Hashed, Progress } from './hashed-copy.js';
import { commandPath } from './safe-path.js';
import { shellQuote } from './shell-quote.js';
import type { SshPool } from './ssh-pool.js';
import { endpointOf, type SshTarget } from './target.js';

/**
 * Bytes per local write, gathered from the channel's packets (32 KiB each at most): one write and
 * one hand-over to the hashing thread per block, not per packet.
 */
const BLOCK = 1024 * 1024;
/** Blocks written or waiting to be, at most, before the channel is paused. */
const BLOCKS_IN_FLIGHT = 8;

/**
 * Downloads `remote` (of `size` bytes, by a stat just before) into the new local file `local`
 * (created with `mode`, never an existing one) over one exec channel running `cat`, hashing the
 * bytes in file order as they arrive. No SFTP requests: ssh2's SFTP reads cost ~3 s of client
 * CPU per GiB here, its exec channel's bytes under 1 s (the SFTP path is getHashed). `remote`
 * reaches the shell only as one quoted argument (commandPath: no control characters, never read
 * as an option). A file that read other than `size` bytes changed meanwhile: a retryable error.
 * Undefined when the pod has no `cat` (exit 127): the caller takes the SFTP path.
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
  let hash: StreamHash | undefined;
  try {
    const h = streamHash(size);
    hash = h;
    const sink = blockSink(fh, h, size, onProgress);
    const command = `cat -- ${shellQuote(commandPath(remote, 'remote file'))}`;
    const res = await pool.exec(target, command, { stdout: sink.take });
    if (res.code === 127) return undefined;
    const bytes = await sink.end();
    const where = `${endpointOf(target)}:${remote}`;
    if (res.code !== 0) {
      throw new TransportError(
        'TRANSPORT_REMOTE_COMMAND_FAILED',
        `streaming ${where} to ${local} failed (${res.code ?? res.signal}): ${res.stderr.trim()}`,
        { endpoint: endpointOf(target) },
      );
    }
    if (bytes !== size)
      throw new TransportError(
        'TRANSPORT_REMOTE_COMMAND_FAILED',
        `get ${where}: read ${bytes} bytes of the ${size} its stat gave (it changed meanwhile)`,
        { retryable: true },
      );
    return { sha256: await h.digest(), bytes };
  } finally {
    hash?.discard(); // a no-op once digested
    await fh.close();
  }
}

/**
 * Takes the channel's chunks into BLOCK-sized buffers, each written at its offset as it fills,
 * then handed to the hash in file order once written (its memory moves to the hashing thread).
 * take() returns a promise (the channel pauses) while BLOCKS_IN_FLIGHT blocks are not yet hashed
 * or the hash is behind; end() writes the last block and resolves with the bytes taken.
 */
function blockSink(
  fh: FileHandle,
  h: StreamHash,
  size: number,
  onProgress?: Progress,
): { take: (chunk: Buffer) => Promise<void> | undefined; end: () => Promise<number> } {
  let block = Buffer.allocUnsafe(BLOCK);
  let fill = 0;
  let taken = 0;
  let hashed = 0;
  let inFlight = 0;
  let failed: { err: unknown } | undefined;
  /** Settles once every block so far is written and hashed, in order; never rejects. */
  let tail: Promise<void> = Promise.resolve();
  /** Each take() waiting for room; the channel is paused while one waits, but keep them all. */
  let waiting: (() => boolean)[] = [];
  const flush = () => {
    if (fill === 0) return;
    const b = fill === block.length ? block : block.subarray(0, fill);
    const at = taken - fill;
    block = Buffer.allocUnsafe(BLOCK);
    fill = 0;
    inFlight++;
    const written = writeAll(fh, b, at);
    written.catch(() => undefined); // seen through tail
    tail = tail
      .then(() => written)
      .then(async () => {
        if (failed) return;
        hashed += b.length;
        h.update(b); // b is the hash's from here
        onProgress?.(hashed, size);
        await h.ready();
      })
      .catch((err: unknown) => {
        failed ??= { err };
      })
      .finally(() => {
        inFlight--;
        waiting = waiting.filter((w) => !w());
      });
  };
  return {
    take(chunk) {
      if (failed) return Promise.reject(failed.err);
      for (let off = 0; off < chunk.length; ) {
        const n = chunk.copy(block, fill, off);
        fill += n;
        off += n;
        taken += n;
        if (fill === block.length) flush();
      }
      if (inFlight < BLOCKS_IN_FLIGHT) return undefined;
      return new Promise<void>((resolve, reject) => {
        waiting.push(() => {
          if (failed) reject(failed.err);
          else if (inFlight < BLOCKS_IN_FLIGHT) resolve();
          else return false;
          return true;
        });
      });
    },
    async end() {
      flush();
      await tail;
      if (failed) throw failed.err;
      return taken;
    },
  };
}

/** Writes the whole buffer at `at`, again after a short write. */
async function writeAll(fh: FileHandle, b: Buffer, at: number): Promise<void> {
  for (let off = 0; off < b.length; ) {
    const { bytesWritten } = await fh.write(b, off, b.length - off, at + off);
    off += bytesWritten;
  }
}
