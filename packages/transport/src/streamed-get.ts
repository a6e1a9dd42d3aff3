import { type FileHandle, open, rm } from 'node:fs/promises';
import type { Stats } from 'ssh2';
import { ChangedWhileReadError, TransportError } from './errors.js';
import { transferMode } from './file-mode.js';
import { type StreamHash, streamHash } from './hash-worker.js';
import type { Hashed, Progress } from './hashed-copy.js';
import { commandPath } from './safe-path.js';
import { sftpOps } from './sftp-ops.js';
import { shellQuote } from './shell-quote.js';
import type { SshPool } from './ssh-pool.js';
import type { SshTarget } from './target.js';

/**
 * From this size downloadFile fetches a file as `cat`'s output on an exec channel, not with
 * SFTP reads. ssh2's SFTP layer (a request per 255 KiB, each answer parsed and copied into its
 * buffer) costs its thread about 2 s of CPU per GiB more than a channel's plain data: 1 GiB,
 * same run, load 9-10: user CPU 3.8-4.2 s with fastGet against 1.7 s with `cat`. On a 2-core
 * host that CPU is what the transfer waits for. Below it, one SFTP session's few round trips
 * cost less than an exec.
 */
export const STREAMED_GET_MIN = 8 * 1024 * 1024;

/** Bytes gathered from the channel's 32 KiB packets before one local write and one hash update. */
const BLOCK = 1024 * 1024;
/** Blocks written (then hashed) and not yet done before the channel is paused. */
const BLOCKS_AHEAD = 8;

/** What the remote file was when the transfer began: its size and mtime are compared after. */
export type RemoteFile = Pick<Stats, 'size' | 'mtime'>;

/**
 * Downloads `remote` (a regular file whose stat is `before`) into the new local file `local`
 * (created with `mode`, never an existing one) as `cat`'s output, hashing the bytes in order as
 * they are written: the hash is of the very bytes kept. The file on the pod must not change
 * meanwhile: more bytes than `before.size`, fewer, or a size or mtime moved by the end fail
 * with ChangedWhileReadError (retryable). Resolves undefined, leaving no local file, when the
 * pod has no `cat` (exit 127): the caller then reads over SFTP.
 */
export async function getStreamed(
  pool: SshPool,
  target: SshTarget,
  remote: string,
  before: RemoteFile,
  local: string,
  mode: number,
  onProgress?: Progress,
): Promise<Hashed | undefined> {
  const { size } = before;
  const cmd = `cat -- ${shellQuote(commandPath(remote, 'file to fetch'))}`;
  const out: FileHandle = await open(local, 'wx', transferMode(mode));
  const hash: StreamHash = streamHash(size);
  let received = 0;
  /** Start (file offset) and fill of the block being gathered. */
  let at = 0;
  let block = Buffer.allocUnsafe(Math.max(1, Math.min(BLOCK, size)));
  let fill = 0;
  /** Blocks being written then hashed, in order; and how many of them. */
  let chain: Promise<void> = Promise.resolve();
  let ahead = 0;
  let failed: { err: unknown } | undefined;
  const flush = () => {
    if (fill === 0) return;
    const b = fill === block.length ? block : block.subarray(0, fill);
    const pos = at;
    at += fill;
    const end = at;
    ahead++;
    chain = chain
      .then(async () => {
        if (failed) return;
        await out.write(b, 0, b.length, pos);
        hash.update(b); // b is the hash's from here (detached: its length reads 0)
        await hash.ready();
        onProgress?.(end, size);
      })
      .catch((err: unknown) => {
        failed ??= { err };
      })
      .finally(() => {
        ahead--;
      });
    block = Buffer.allocUnsafe(Math.max(1, Math.min(BLOCK, size - at)));
    fill = 0;
  };
  let keep = false;
  try {
    const res = await pool.exec(target, cmd, {
      onStdout: (chunk) => {
        if (failed) throw failed.err;
        received += chunk.length;
        // Grown since the stat: stop at once rather than fill the disk with a growing file.
        if (received > size) throw new ChangedWhileReadError(`${target.host}:${remote}`, 'fetched');
        for (let off = 0; off < chunk.length; ) {
          const n = Math.min(chunk.length - off, block.length - fill);
          chunk.copy(block, fill, off, off + n);
          fill += n;
          off += n;
          if (fill === block.length) flush();
        }
        return ahead >= BLOCKS_AHEAD ? chain : undefined;
      },
    });
    if (res.code === 127) return undefined;
    if (res.code !== 0) {
      throw new TransportError(
        'TRANSPORT_REMOTE_COMMAND_FAILED',
        `cat ${remote} failed (${res.code ?? res.signal}): ${res.stderr.trim()}`,
        { retryable: false },
      );
    }
    flush();
    await chain;
    if (failed) throw failed.err;
    const after = await pool.sftp(target, (s) => sftpOps.stat(s, remote));
    if (received !== size || after.size !== size || after.mtime !== before.mtime)
      throw new ChangedWhileReadError(`${target.host}:${remote}`, 'fetched');
    keep = true;
    return { sha256: await hash.digest(), bytes: size };
  } finally {
    hash.discard(); // a no-op once digested
    await chain;
    await out.close();
    if (!keep) await rm(local, { force: true });
  }
}
