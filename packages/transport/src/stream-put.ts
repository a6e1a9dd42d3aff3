import { type FileHandle, open } from 'node:fs/promises';
import { ChangedWhileReadError, TransportError } from './errors.js';
import { transferMode } from './file-mode.js';
import { type StreamHash, streamHash } from './hash-worker.js';
import type { Hashed, Progress } from './hashed-copy.js';
import { commandPath } from './safe-path.js';
import { shellQuote } from './shell-quote.js';
import type { SshPool } from './ssh-pool.js';
import { endpointOf, type SshTarget } from './target.js';

/** Bytes per local read; each is one write to the channel. */
const READ_BLOCK = 1024 * 1024;

/**
 * The pod's side of a streamed put, as a `sh -c` script taking the file ($1), its mode in octal
 * ($2) and the bytes it must receive ($3): `cat` writes stdin to the file, then OpenSSL (else
 * coreutils' sha256sum) hashes the file as stored. Prints the hash line, then the file's size.
 * The hash is of what the file holds, read back (from the page cache), not of the bytes as they
 * passed: SSH's own integrity already covers the channel. Hashing the stream as `tee` wrote it
 * cost more CPU than the read back on these 2-core machines (tee moves 8 KiB a read, and every
 * byte crossed one more pipe; 512 MiB on tmpfs: 1.4-2.0 s of CPU against 0.9), and a transfer
 * here is bound by the CPU of all its processes. A failed write (ENOSPC) fails the script. The
 * file is created under umask 077 and given its mode only once whole; a file short of $3 bytes
 * (its stdin ended early: a sender that failed and whose KILL did not arrive) is removed and the
 * script fails, before any hashing. Exits 127, before reading any input, when the pod has
 * neither hasher.
 */
export const STREAM_PUT_SCRIPT = [
  'umask 077',
  'if openssl dgst -sha256 -r </dev/null >/dev/null 2>&1; then h="openssl dgst -sha256 -r"',
  'elif command -v sha256sum >/dev/null 2>&1; then h=sha256sum; else exit 127; fi',
  'cat > "$1" || exit 1',
  'n=$(wc -c < "$1") || exit 1',
  '[ "$n" -eq "$3" ] || { rm -f -- "$1"; echo "received $n of $3 bytes" >&2; exit 1; }',
  '$h < "$1" || exit 1',
  'chmod -- "$2" "$1" && echo "$n"',
].join('\n');

/** What a streamed put sent (hashed here) and what the pod wrote (hashed there). */
export interface StreamedPut {
  readonly sent: Hashed;
  readonly pod: Hashed;
}

/**
 * Streams the local file into the remote file `remote` (created or truncated, then given
 * `mode`) over one exec channel (STREAM_PUT_SCRIPT), hashing it here as it is read: no SFTP
 * requests; the pod hashes the file once it is whole. `remote` reaches the shell only as one
 * quoted argument (commandPath: no control characters, never read as an option). A local file
 * that changed while it was read fails with ChangedWhileReadError; undefined when the pod has
 * no hasher (the caller then takes the SFTP path). The caller compares sent and pod.
 */
export async function putStreamed(
  pool: SshPool,
  target: SshTarget,
  local: string,
  remote: string,
  mode: number,
  onProgress?: Progress,
): Promise<StreamedPut | undefined> {
  const fh = await open(local, 'r');
  let hash: StreamHash | undefined;
  try {
    const before = await fh.stat();
    if (!before.isFile()) {
      throw new TransportError('TRANSPORT_UNSUPPORTED_FILE', `${local} is not a regular file`);
    }
    const h = streamHash(before.size);
    hash = h;
    const read = { bytes: 0 };
    const command = [
      `sh -c ${shellQuote(STREAM_PUT_SCRIPT)} sh`,
      shellQuote(commandPath(remote, 'remote file')),
      transferMode(mode).toString(8),
      String(before.size),
    ].join(' ');
    const res = await pool.exec(target, command, {
      stdin: chunksOf(fh, before.size, h, read, onProgress),
    });
    if (res.code === 127) return undefined;
    // First: a file that read other than its stat said also makes the pod refuse its bytes.
    const after = await fh.stat();
    if (
      read.bytes !== before.size ||
      after.size !== before.size ||
      after.mtimeMs !== before.mtimeMs ||
      after.ctimeMs !== before.ctimeMs
    )
      throw new ChangedWhileReadError(local);
    const where = `${endpointOf(target)}:${remote}`;
    if (res.code !== 0) {
      throw new TransportError(
        'TRANSPORT_REMOTE_COMMAND_FAILED',
        `streaming ${local} to ${where} failed (${res.code ?? res.signal}): ${res.stderr.trim()}`,
        { endpoint: endpointOf(target) },
      );
    }
    const m = /^\\?([0-9a-f]{64}) .*\n(\d+)\n$/.exec(res.stdout);
    if (!m?.[1] || !m[2]) {
      throw new TransportError(
        'TRANSPORT_REMOTE_COMMAND_FAILED',
        `streaming ${local} to ${where}: unexpected output ${JSON.stringify(res.stdout.slice(0, 200))}`,
      );
    }
    return {
      sent: { sha256: await h.digest(), bytes: read.bytes },
      pod: { sha256: m[1], bytes: Number(m[2]) },
    };
  } finally {
    hash?.discard(); // a no-op once digested
    await fh.close();
  }
}

/**
 * The file's bytes in READ_BLOCK chunks, the next read under way while one is sent; each is
 * hashed once the channel has taken it (streamStdin resumes us then), in order.
 */
async function* chunksOf(
  fh: FileHandle,
  size: number,
  h: StreamHash,
  read: { bytes: number },
  onProgress?: Progress,
): AsyncGenerator<Buffer> {
  const at = (position: number) => {
    const buf = Buffer.allocUnsafe(READ_BLOCK);
    const p = fh.read(buf, 0, READ_BLOCK, position).then((r) => buf.subarray(0, r.bytesRead));
    // Awaited later; a failure while a chunk is out must not count as unhandled meanwhile.
    p.catch(() => undefined);
    return p;
  };
  let next = at(0);
  try {
    for (;;) {
      const buf = await next;
      if (buf.length === 0) return;
      // Counted first: a big chunk's memory moves to the hashing thread at update().
      read.bytes += buf.length;
      next = at(read.bytes);
      yield buf;
      h.update(buf); // buf is the hash's from here
      onProgress?.(read.bytes, size);
      await h.ready();
    }
  } finally {
    // No read left running on a handle about to close.
    await next.catch(() => undefined);
  }
}
