import { createHash, randomBytes } from 'node:crypto';
import { chmod, mkdir, open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { isRetryable } from '@computepods/protocol';
import type { SFTPWrapper, Stats } from 'ssh2';
import { TransportError, VerifyError, worthRetryingTransfer } from './errors.js';
import { transferMode } from './file-mode.js';
import { getHashed, type Hashed } from './hashed-copy.js';
import { sha256Remote } from './hashing.js';
import { assertSafeRelativePath } from './safe-path.js';
import { sftpOps } from './sftp-ops.js';
import type { SshPool } from './ssh-pool.js';
import { getStreamed } from './stream-get.js';
import { endpointOf, type SshTarget } from './target.js';

export interface FilesDownloadItem {
  /** The file under the remote directory: '/'-separated, no '..', not absolute. */
  readonly rel: string;
  /** Where it goes; its directory is created. Written under a temp name beside it, then renamed. */
  readonly local: string;
  /**
   * The SHA-256 the bytes must have (lowercase hex). Given: the received bytes are hashed and
   * renamed into place only when they match; other bytes are reported (`other`), not written.
   * Omitted: the remote host hashes the file (one exec per 500 files, while the bytes come over).
   */
  readonly sha256?: string;
}

export type FileDownloadOutcome =
  /** Verified and renamed into place. */
  | { readonly status: 'fetched'; readonly sha256: string; readonly bytes: number }
  /** The remote file holds other bytes than `sha256`: nothing written. */
  | { readonly status: 'other'; readonly sha256: string; readonly bytes: number }
  | { readonly status: 'failed'; readonly error: TransportError };

export interface FilesDownloadOptions {
  /** Files in flight at once on the one SFTP session (default 32). */
  readonly concurrency?: number;
  /** Rounds in all (default 3): files cut off by a lost connection are fetched again. */
  readonly attempts?: number;
}

/**
 * Read into memory and hashed there up to this size; a bigger file streams to disk out of `cat`
 * over an exec channel (getStreamed, downloadFile's way for a big file), or by SFTP reads
 * (getHashed) from a pod without `cat`.
 */
const IN_MEMORY = 1 << 20;

/**
 * Downloads many files from one host as one batch: one SFTP session with `concurrency` files in
 * flight, each opened, stat'ed and read in one go (open, then fstat and read together, then
 * close), where one downloadFile per file costs a session, a stat, a pipelined read and a hash exec
 * each. Keeps downloadFile's guarantees per file: a temp name beside the destination and
 * rename(2), so no partial file is ever visible; the bytes hashed and checked against the
 * expected or the remote host's SHA-256 first; names checked against traversal. One file's
 * failure does not stop the others: the outcomes are in the items' order.
 */
export async function downloadFiles(
  pool: SshPool,
  target: SshTarget,
  remoteDir: string,
  items: readonly FilesDownloadItem[],
  options: FilesDownloadOptions = {},
): Promise<FileDownloadOutcome[]> {
  for (const item of items) assertSafeRelativePath(item.rel);
  const dir = remoteDir.replace(/\/+$/, '') || '/';
  const concurrency = Math.max(1, options.concurrency ?? 32);
  const attempts = Math.max(1, options.attempts ?? 3);
  const outcomes: (FileDownloadOutcome | undefined)[] = items.map(() => undefined);
  for (let attempt = 1; ; attempt++) {
    const todo = items.flatMap((_item, i) => (retry(outcomes[i]) ? [i] : []));
    if (todo.length === 0 || attempt > attempts) break;
    if (attempt > 1) await new Promise((r) => setTimeout(r, 100 * attempt));
    await tryOnce(pool, target, dir, items, todo, outcomes, concurrency);
  }
  return outcomes.map(
    (o) =>
      o ?? {
        status: 'failed',
        error: new TransportError('TRANSPORT_CONNECTION_LOST', 'the file was never fetched', {
          retryable: true,
        }),
      },
  );
}

function retry(o: FileDownloadOutcome | undefined): boolean {
  return o === undefined || (o.status === 'failed' && worthRetryingTransfer(o.error));
}

/** One try of the files at `todo`: one session; the remote hashes, if needed, alongside. */
async function tryOnce(
  pool: SshPool,
  target: SshTarget,
  dir: string,
  items: readonly FilesDownloadItem[],
  todo: readonly number[],
  outcomes: (FileDownloadOutcome | undefined)[],
  concurrency: number,
): Promise<void> {
  const unhashed = todo.filter((i) => items[i]?.sha256 === undefined);
  const remote = unhashed.length
    ? sha256Remote(
        pool,
        target,
        dir,
        unhashed.map((i) => items[i]?.rel ?? ''),
      ).then(
        (m) =>
          m ??
          new TransportError(
            'TRANSPORT_REMOTE_COMMAND_FAILED',
            `${endpointOf(target)} has neither openssl nor sha256sum; install one there or give each file's sha256`,
          ),
      )
    : undefined;
  remote?.catch(() => undefined);
  const want = async (item: FilesDownloadItem): Promise<string> => {
    if (item.sha256 !== undefined) return item.sha256;
    const hashes = await (remote as Promise<Map<string, string> | Error>).catch((e: Error) => e);
    // One file missing fails the batch's hash command: a file that came over is hashed alone.
    const h =
      hashes instanceof Map
        ? hashes.get(item.rel)
        : (await sha256Remote(pool, target, dir, [item.rel]))?.get(item.rel);
    if (!h)
      throw hashes instanceof Error
        ? asTransportError(hashes)
        : new TransportError('TRANSPORT_REMOTE_COMMAND_FAILED', `no hash of ${dir}/${item.rel}`);
    return h;
  };
  const round: Round = { lost: undefined, temps: new Set() };
  const stream: Stream = (remotePath, size, tmp, mode) =>
    getStreamed(pool, target, remotePath, size, tmp, mode);
  try {
    await pool.sftp(target, (sftp) => {
      let next = 0;
      return Promise.all(
        Array.from({ length: Math.min(concurrency, todo.length) }, async () => {
          for (let k = next++; k < todo.length && !round.lost; k = next++) {
            const i = todo[k] as number;
            const item = items[i] as FilesDownloadItem;
            const outcome = await fetchOne(
              sftp,
              stream,
              `${dir}/${item.rel}`,
              item,
              want,
              round,
            ).catch((err: unknown) => ({
              status: 'failed' as const,
              error: asTransportError(err),
            }));
            if (!round.lost) outcomes[i] = outcome;
          }
        }),
      );
    });
  } catch (err) {
    // The session went away mid-batch. a transfer may never call back then, so the files
    // still under way are not waited for: none of them renames into place any more (fetchOne
    // checks `lost` just before), and their temp files are removed here.
    round.lost = asTransportError(err);
    await Promise.all([...round.temps].map((t) => rm(t, { force: true })));
    for (const i of todo)
      if (outcomes[i] === undefined) outcomes[i] = { status: 'failed', error: round.lost };
  }
}

/** A big file's bytes streamed into `tmp`; undefined when the pod cannot (no `cat`). */
type Stream = (
  remotePath: string,
  size: number,
  tmp: string,
  mode: number,
) => Promise<Hashed | undefined>;

interface Round {
  lost: TransportError | undefined;
  /** Temp files being written. */
  readonly temps: Set<string>;
}

function asTransportError(err: unknown): TransportError {
  if (err instanceof TransportError) return err;
  return new TransportError('TRANSPORT_SFTP', (err as Error)?.message ?? String(err), {
    cause: err,
    // A local file system error repeats but for a transient errno; a dropped session's may not.
    retryable: isRetryable(err),
  });
}

async function fetchOne(
  sftp: SFTPWrapper,
  stream: Stream,
  remotePath: string,
  item: FilesDownloadItem,
  want: (item: FilesDownloadItem) => Promise<string>,
  round: Round,
): Promise<FileDownloadOutcome> {
  const handle = await sftpOps.open(sftp, remotePath, 'r');
  let st: Stats;
  let data: Buffer | undefined;
  try {
    // fstat and the first read together: a small file is in after one round trip.
    const first = Buffer.allocUnsafe(64 * 1024);
    const [s, n] = await Promise.all([
      sftpOps.fstat(sftp, handle, remotePath),
      sftpOps.read(sftp, handle, first, 0, remotePath),
    ]);
    st = s;
    if (!st.isFile()) {
      throw new TransportError(
        'TRANSPORT_UNSUPPORTED_FILE',
        `${remotePath} is not a regular file`,
        {
          retryable: false,
        },
      );
    }
    if (st.size <= IN_MEMORY) {
      const buf = Buffer.alloc(st.size);
      first.copy(buf, 0, 0, Math.min(n, st.size));
      let got = Math.min(n, st.size);
      while (got < st.size) {
        const m = await sftpOps.read(sftp, handle, buf, got, remotePath);
        if (m === 0) break;
        got += m;
      }
      data = buf.subarray(0, got);
    }
  } finally {
    await sftpOps.close(sftp, handle, remotePath).catch(() => undefined);
  }
  const mode = transferMode(st.mode);
  const local = item.local;
  const tmp = join(dirname(local), `.${basename(local)}.tmp-${randomBytes(6).toString('hex')}`);
  round.temps.add(tmp);
  try {
    let got: string;
    let bytes: number;
    if (data) {
      got = createSha256(data);
      bytes = data.length;
      // Bytes other than the ones asked for are never written.
      if (item.sha256 !== undefined && got !== item.sha256)
        return { status: 'other', sha256: got, bytes };
      await mkdir(dirname(local), { recursive: true });
      const fh = await open(tmp, 'wx', mode);
      try {
        await fh.writeFile(data);
      } finally {
        await fh.close();
      }
    } else {
      await mkdir(dirname(local), { recursive: true });
      // Hashed as the bytes arrive: no second read of a big file.
      let hashed = await stream(remotePath, st.size, tmp, mode);
      if (!hashed) {
        // The pod has no cat: the empty file getStreamed made goes, SFTP reads instead.
        await rm(tmp);
        hashed = await getHashed(sftp, remotePath, tmp, mode);
      }
      ({ sha256: got, bytes } = hashed);
      if (item.sha256 !== undefined && got !== item.sha256) {
        await rm(tmp, { force: true });
        return { status: 'other', sha256: got, bytes };
      }
    }
    const expected = await want(item);
    if (got !== expected) throw new VerifyError(local, expected, got);
    await chmod(tmp, mode);
    if (round.lost) throw round.lost;
    await rename(tmp, local);
    return { status: 'fetched', sha256: got, bytes };
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  } finally {
    round.temps.delete(tmp);
  }
}

function createSha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}
