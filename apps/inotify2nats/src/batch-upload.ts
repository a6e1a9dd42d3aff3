import { createHash, randomBytes } from 'node:crypto';
import {
  ChangedWhileReadError,
  putHashed,
  type SshPool,
  type SshTarget,
  sftpOps,
  sha256Remote,
  VerifyError,
} from '@computepods/transport';
import pMap from 'p-map';
import type { Sftp } from './sftp-session.js';

/** One file to send: the local file and its place under the remote root. */
export interface UploadItem {
  readonly rel: string;
  readonly local: string;
  /** Permission bits to give the remote file. */
  readonly mode: number;
}

export interface Uploaded {
  readonly sha256: string;
  readonly size: number;
}

export interface UploadBatchOptions {
  readonly pool: SshPool;
  readonly target: SshTarget;
  /** The remote root as the server resolved it. */
  readonly root: string;
  /** Files in flight at once on the SFTP session. */
  readonly concurrency: number;
  /** Called in the session before a file is put: checks (and makes) its remote directory. */
  readonly prepareDir: (s: Sftp, rel: string) => Promise<void>;
  /** Called as soon as a file is in place under its name (so a later failure keeps it). */
  readonly onUploaded?: (rel: string, uploaded: Uploaded) => void;
  /** A per-file failure: true if handled (the file is left out), false to fail the batch. */
  readonly onFileError: (rel: string, err: unknown) => boolean;
}

function tmpName(rel: string): string {
  const i = rel.lastIndexOf('/');
  // The same shape as transport's uploadFile, so pod watchers ignore both alike.
  return `${rel.slice(0, i + 1)}.${rel.slice(i + 1)}.tmp-${randomBytes(6).toString('hex')}`;
}

/**
 * uploadFile's protocol (hidden temp name beside the target, SHA-256 computed by the pod,
 * atomic rename) for many files at once: one SFTP session puts them all, one `sha256sum` per
 * 500 files verifies them, one session renames them. Per file that is one round of SFTP
 * requests instead of four channel opens, which is what a burst of hundreds of saves needs.
 * A file whose bytes changed while it was sent (its size, mtime or ctime moved) is sent again.
 */
export async function uploadBatch(
  items: readonly UploadItem[],
  o: UploadBatchOptions,
): Promise<Map<string, Uploaded>> {
  const done = new Map<string, Uploaded>();
  let pending = [...items];
  /** Temp files on the pod not yet renamed into place: removed if we stop early. */
  const tmps = new Map<string, { tmp: string; want: Uploaded }>();
  const stale: string[] = [];
  try {
    for (let round = 0; pending.length > 0; round++) {
      const again: UploadItem[] = [];
      await o.pool.sftp(o.target, (s) =>
        pMap(
          pending,
          async (it) => {
            const tmp = tmpName(it.rel);
            try {
              await o.prepareDir(s, it.rel);
              // Hashed as it is read and sent: the hash is of the very bytes the pod got.
              const want = await putHashed(s, it.local, `${o.root}/${tmp}`, it.mode & 0o7777);
              tmps.set(it.rel, { tmp, want: { sha256: want.sha256, size: want.bytes } });
            } catch (err) {
              // What it wrote of its temp file (if anything) is removed at the end.
              stale.push(tmp);
              // Written while we read it: sent again next round.
              if (err instanceof ChangedWhileReadError && round < 3) {
                again.push(it);
                return;
              }
              if (!o.onFileError(it.rel, err)) throw err;
            }
          },
          { concurrency: o.concurrency },
        ),
      );
      const sent = [...tmps];
      const remote = await hashRemote(
        o,
        sent.map(([, t]) => t.tmp),
      );
      for (const [rel, { tmp, want }] of sent) {
        const got = remote.get(tmp);
        if (got !== want.sha256)
          throw new VerifyError(`${o.root}/${rel}`, want.sha256, got ?? '(missing)');
      }
      await o.pool.sftp(o.target, (s) =>
        pMap(
          [...tmps],
          async ([rel, { tmp, want }]) => {
            await sftpOps.replace(s, `${o.root}/${tmp}`, `${o.root}/${rel}`);
            tmps.delete(rel);
            done.set(rel, want);
            o.onUploaded?.(rel, want);
          },
          { concurrency: o.concurrency },
        ),
      );
      pending = again;
    }
    return done;
  } finally {
    const left = [...stale, ...[...tmps.values()].map((t) => t.tmp)];
    if (left.length > 0) await removeTemps(o, left);
  }
}

async function hashRemote(o: UploadBatchOptions, rels: string[]): Promise<Map<string, string>> {
  if (rels.length === 0) return new Map();
  const hashes = await sha256Remote(o.pool, o.target, o.root, rels);
  if (hashes) return hashes;
  // No sha256sum on the pod: read the files back instead.
  const out = new Map<string, string>();
  await o.pool.sftp(o.target, (s) =>
    pMap(
      rels,
      async (rel) => {
        const h = createHash('sha256');
        for await (const chunk of s.createReadStream(`${o.root}/${rel}`)) h.update(chunk as Buffer);
        out.set(rel, h.digest('hex'));
      },
      { concurrency: o.concurrency },
    ),
  );
  return out;
}

async function removeTemps(o: UploadBatchOptions, rels: string[]): Promise<void> {
  await o.pool
    .sftp(o.target, (s) =>
      pMap(rels, (rel) => sftpOps.unlink(s, `${o.root}/${rel}`).catch(() => undefined), {
        concurrency: o.concurrency,
      }),
    )
    .catch(() => undefined);
}
