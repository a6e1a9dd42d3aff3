import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import type { SFTPWrapper } from 'ssh2';
import { TransportError } from './errors.js';
import { commandPath } from './safe-path.js';
import { shellQuote } from './shell-quote.js';
import type { SshPool } from './ssh-pool.js';
import type { SshTarget } from './target.js';

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Reads a remote file back over SFTP and hashes it. */
export async function sha256Sftp(sftp: SFTPWrapper, path: string): Promise<string> {
  const hash = createHash('sha256');
  const stream = sftp.createReadStream(path);
  // Reading ends before the handle's close request is answered; ending the session with
  // that request pending would raise 'No response from server' on a stream nobody watches.
  const closed = new Promise<void>((resolve) => stream.once('close', () => resolve()));
  try {
    for await (const chunk of stream) hash.update(chunk as Buffer);
  } finally {
    stream.on('error', () => undefined);
    await closed;
  }
  return hash.digest('hex');
}

/** A remote path as the shell should see it: quoted, never starting with '-'. */
function shellPath(path: string, what: string): string {
  return shellQuote(commandPath(path, what));
}

/**
 * The remote hasher, as a `sh -c` script taking the files as arguments: OpenSSL's
 * `dgst -sha256 -r` where it works, else coreutils' `sha256sum`. Both print one line per file,
 * the 64 hex digits first. coreutils' sha256sum (9.1 in Debian 12) is plain C, while OpenSSL
 * uses the CPU's SHA extensions: on a 1 GiB file 16.5 s against 3.8 s on our 2-core machine,
 * longer than the SFTP transfer itself. Any OpenSSL failure (none installed, an old one
 * without -r, an unreadable file) falls back to sha256sum, whose exit status and stderr then
 * speak; 127 when neither exists. The names are arguments, not script text, so a batch still
 * fits in one argument's 128 KiB. Starting sh and openssl costs about 3 ms more per exec than
 * sha256sum alone (8 against 5 ms on a loaded 2-core machine), so files known to be small
 * (OPENSSL_FROM) go to sha256sum directly.
 */
/** Below this many bytes in all, sha256sum is quicker than starting OpenSSL. */
export const OPENSSL_FROM = 1 << 20;

export const REMOTE_SHA256_SCRIPT =
  'if out=$(openssl dgst -sha256 -r -- "$@" 2>/dev/null); then printf \'%s\\n\' "$out"; ' +
  'else exec sha256sum -- "$@"; fi';

/**
 * SHA-256 of files under baseDir, computed on the remote host (REMOTE_SHA256_SCRIPT, or
 * sha256sum alone when `bytes`, the files' total size, is known to be below OPENSSL_FROM): one
 * exec per batch, 64 hex characters back per file, instead of reading every byte again over
 * the network. Returns undefined when the host has no hasher (exit 127), so the caller can
 * re-read.
 */
export async function sha256Remote(
  pool: SshPool,
  target: SshTarget,
  baseDir: string,
  rels: readonly string[],
  options: { readonly bytes?: number } = {},
): Promise<Map<string, string> | undefined> {
  const result = new Map<string, string>();
  const hasher =
    options.bytes !== undefined && options.bytes < OPENSSL_FROM
      ? 'sha256sum --'
      : `sh -c ${shellQuote(REMOTE_SHA256_SCRIPT)} sh`;
  for (const batch of batches(rels)) {
    const names = batch.map((rel) => shellPath(rel, 'file to hash')).join(' ');
    const cmd = `cd ${shellPath(baseDir, 'directory')} && ${hasher} ${names}`;
    const res = await pool.exec(target, cmd);
    if (res.code === 127) return undefined;
    if (res.code !== 0) {
      throw new TransportError(
        'TRANSPORT_REMOTE_COMMAND_FAILED',
        `sha256sum in ${baseDir} failed (${res.code}): ${res.stderr.trim()}`,
        { retryable: false },
      );
    }
    // One line per argument, in order; names with '\\' or newlines are escaped and the line
    // then starts with '\\', so the hash is always the first 64 hex digits after it.
    const lines = res.stdout.split('\n').filter((l) => l.length > 0);
    if (lines.length !== batch.length) {
      throw new TransportError(
        'TRANSPORT_REMOTE_COMMAND_FAILED',
        `sha256sum in ${baseDir} printed ${lines.length} lines for ${batch.length} files`,
      );
    }
    batch.forEach((rel, i) => {
      const hex = /^\\?([0-9a-f]{64}) /.exec(lines[i] ?? '')?.[1];
      if (!hex) {
        throw new TransportError(
          'TRANSPORT_REMOTE_COMMAND_FAILED',
          `unexpected sha256sum output for ${rel}: ${lines[i]}`,
        );
      }
      result.set(rel, hex);
    });
  }
  return result;
}

/** Splits a file list so no command line comes near ARG_MAX. */
function* batches(rels: readonly string[]): Generator<string[]> {
  let cur: string[] = [];
  let len = 0;
  for (const rel of rels) {
    if (cur.length >= 500 || len + rel.length > 100_000) {
      yield cur;
      cur = [];
      len = 0;
    }
    cur.push(rel);
    len += rel.length + 3;
  }
  if (cur.length) yield cur;
}
