import { lstat, realpath } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Logger } from '@computepods/bus';
import type { FileEvent } from '@computepods/fswatch';
import { checkRelativePath, isRetryable, UnsafePathError } from '@computepods/protocol';
import {
  endpointOf,
  isNoSuchFile,
  type SshPool,
  type SshTarget,
  sftpOps,
  shellQuote,
  TransportError,
} from '@computepods/transport';
import { type UploadItem, uploadBatch } from './batch-upload.js';
import { PodSyncError, PodUnreachableError, UnsafeSyncPathError } from './errors.js';
import { RemoteDirs } from './remote-dirs.js';
import type { Sftp } from './sftp-session.js';

export interface PodMirrorOptions {
  readonly pool: SshPool;
  readonly target: SshTarget;
  /** The pod's name, for messages. */
  readonly pod: string;
  /** The watched local directory. */
  readonly localRoot: string;
  /** The workspace in the pod; relative to the SSH user's home unless absolute. */
  readonly remoteRoot: string;
  /** Files uploaded at once. */
  readonly concurrency: number;
}

/** What a batch did in the pod: the events to announce, each describing bytes now there. */
export interface MirrorResult {
  readonly events: FileEvent[];
  /** Paths left out for good (refused or unreadable), each already logged as an error. */
  readonly refused: string[];
}

// Failures that concern the host, not one file: the whole batch must wait and retry.
const HOST_LEVEL = new Set<string>([
  'TRANSPORT_AUTH_FAILED',
  'TRANSPORT_CHANNEL_FAILED',
  'TRANSPORT_COMMAND_TIMEOUT',
  'TRANSPORT_CONNECTION_LOST',
  'TRANSPORT_CONNECTION_REFUSED',
  'TRANSPORT_CONNECT_TIMEOUT',
  'TRANSPORT_DNS',
  'TRANSPORT_HOST_KEY_MISMATCH',
  'TRANSPORT_HOST_KEY_UNKNOWN',
  'TRANSPORT_KEY_UNREADABLE',
  'TRANSPORT_POOL_CLOSED',
  'TRANSPORT_PROTOCOL',
]);

// Failures that concern one file and will fail the same way again.
// (An unsafe path is protocol's UnsafePathError, per file too.)
const PER_FILE = new Set<string>(['TRANSPORT_UNSUPPORTED_FILE', 'TRANSPORT_DESTINATION_EXISTS']);

type Outcome =
  | { kind: 'uploaded'; sha256: string; size: number }
  | { kind: 'vanished' }
  | { kind: 'refused' };

/**
 * Makes the pod's workspace hold what a batch of local changes says, over pooled SFTP:
 * deletions first, then uploads (temp name, SHA-256 checked on the pod, atomic rename). A
 * path that would leave either root is refused. Host failures reject the whole batch, so the
 * watcher keeps it pending; uploads already verified in an earlier try are not repeated.
 */
export class PodMirror {
  readonly #o: PodMirrorOptions;
  readonly endpoint: string;
  #remoteRoot: string | undefined;
  #localRoot: string | undefined;
  #memo: { key: string; done: Map<string, Outcome> } | undefined;

  constructor(options: PodMirrorOptions) {
    this.#o = options;
    this.endpoint = endpointOf(options.target);
  }

  /** Creates the remote root if needed and resolves it on the server (cached once known). */
  async prepare(): Promise<string> {
    if (this.#remoteRoot) return this.#remoteRoot;
    const { pool, target, remoteRoot } = this.#o;
    try {
      this.#remoteRoot = await pool.sftp(target, async (s) => {
        // The remote root may lie under a symlinked directory (a home on another volume).
        await sftpOps.mkdirp(s, remoteRoot, { followSymlinks: true });
        return sftpOps.realpath(s, remoteRoot);
      });
    } catch (err) {
      throw this.#hostError(err, 0, `prepare the remote root ${remoteRoot}`);
    }
    this.#localRoot ??= await realpath(this.#o.localRoot);
    return this.#remoteRoot;
  }

  /**
   * Applies a batch. `key` identifies the batch across retries (same events, same key).
   * Resolves with the events to publish; rejects (retryable) when the pod cannot be reached.
   */
  async apply(events: readonly FileEvent[], key: string, logger: Logger): Promise<MirrorResult> {
    const root = await this.prepare().catch((err: unknown) => {
      throw this.#hostError(err, events.length, 'prepare the remote root');
    });
    if (this.#memo?.key !== key) this.#memo = { key, done: new Map() };
    const done = this.#memo.done;
    const dirs = new RemoteDirs(root);
    const refused: string[] = [];
    const refuse = (path: string, err: Error & { code?: string }) => {
      refused.push(path);
      logger.error({ code: err.code, path, err: err.message }, err.message);
    };

    const removals = events.flatMap((e) =>
      e.kind === 'deleted' ? [e.path] : e.kind === 'moved' && e.from ? [e.from] : [],
    );
    if (removals.length > 0) {
      try {
        await this.#o.pool.sftp(this.#o.target, async (s) => {
          for (const rel of removals) {
            try {
              await this.#remove(s, dirs, rel);
            } catch (err) {
              if (!isPerFile(err)) throw err;
              refuse(rel, err as Error);
            }
          }
        });
      } catch (err) {
        throw this.#hostError(err, events.length, `remove ${removals[0]}`);
      }
    }

    const items: UploadItem[] = [];
    for (const ev of events) {
      if (ev.kind === 'deleted' || done.has(ev.path)) continue;
      try {
        const item = await this.#localItem(ev.path);
        if (item) items.push(item);
        else done.set(ev.path, { kind: 'vanished' });
      } catch (err) {
        if (!isPerFile(err)) throw this.#hostError(err, events.length, `read ${ev.path}`);
        refuse(ev.path, err as Error);
        done.set(ev.path, { kind: 'refused' });
      }
    }
    try {
      await uploadBatch(items, {
        pool: this.#o.pool,
        target: this.#o.target,
        root,
        concurrency: this.#o.concurrency,
        prepareDir: async (s, rel) => {
          await dirs.ensure(s, parentOf(rel), true, rel);
        },
        onUploaded: (rel, u) => {
          done.set(rel, { kind: 'uploaded', sha256: u.sha256, size: u.size });
          logger.debug(
            { path: rel, bytes: u.size, sha256: u.sha256, via: u.via },
            'uploaded and verified',
          );
        },
        onFileError: (rel, err) => {
          if (vanished(err)) {
            // Gone since it was hashed: the watcher reports the deletion in a later batch.
            done.set(rel, { kind: 'vanished' });
            return true;
          }
          if (!isPerFile(err)) return false;
          refuse(rel, err as Error);
          done.set(rel, { kind: 'refused' });
          return true;
        },
      });
    } catch (err) {
      throw this.#hostError(err, events.length, `copy ${items.length} file(s)`);
    }

    const out: FileEvent[] = [];
    for (const ev of events) {
      if (ev.kind === 'deleted') {
        if (!refused.includes(ev.path)) out.push(ev);
        continue;
      }
      const r = done.get(ev.path);
      if (r?.kind === 'uploaded') {
        if (r.sha256 !== ev.sha256)
          logger.debug(
            { path: ev.path },
            'file changed after it was hashed; announcing the bytes uploaded',
          );
        out.push({ ...ev, sha256: r.sha256, size: r.size });
      } else if (ev.kind === 'moved' && ev.from && !refused.includes(ev.from)) {
        // The old name is gone from the pod although the new one could not be sent.
        out.push({
          kind: 'deleted',
          path: ev.from,
          size: ev.size,
          mtimeNs: ev.mtimeNs,
          sha256: null,
        });
      }
    }
    return { events: out, refused };
  }

  async #remove(s: Sftp, dirs: RemoteDirs, rel: string) {
    const safe = safeRel(rel);
    if (!(await dirs.ensure(s, parentOf(safe), false, rel))) return;
    const abs = `${dirs.root}/${safe}`;
    const st = await sftpOps.statOrUndefined(s, abs);
    if (!st) return;
    if (st.isDirectory())
      throw new UnsafeSyncPathError(rel, `on the pod, ${abs} is a directory; not removing a tree`);
    try {
      await sftpOps.unlink(s, abs);
    } catch (err) {
      if (!isNoSuchFile(err)) throw err;
    }
  }

  /** The local file to send, checked: undefined when it is gone; throws when it is unsafe. */
  async #localItem(rel: string): Promise<UploadItem | undefined> {
    const safe = safeRel(rel);
    const local = join(this.#o.localRoot, safe);
    const st = await lstat(local).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT' || err.code === 'ENOTDIR') return undefined;
      throw err;
    });
    if (!st) return undefined;
    if (st.isSymbolicLink())
      throw new UnsafeSyncPathError(
        rel,
        'it is a symlink on this machine; only regular files are synced',
      );
    if (!st.isFile()) throw new UnsafeSyncPathError(rel, 'it is not a regular file');
    const localDir = await realpath(dirname(local));
    this.#localRoot ??= await realpath(this.#o.localRoot);
    const localRoot = this.#localRoot;
    if (localDir !== localRoot && !localDir.startsWith(`${localRoot}/`))
      throw new UnsafeSyncPathError(
        rel,
        `its directory resolves to ${localDir}, outside ${localRoot}`,
      );
    return { rel: safe, local, mode: st.mode };
  }

  /** The ssh command line that reproduces our connection, for error messages. */
  #sshCheck(): string {
    const t = this.#o.target;
    return [
      'ssh',
      ...['-p', String(t.port ?? 22), '-i', t.privateKeyPath],
      ...['-o', `UserKnownHostsFile=${t.knownHostsPath}`, '-o', 'StrictHostKeyChecking=yes'],
      `${t.username}@${t.host}`,
      'true',
    ]
      .map((w) => (/^[\w@%+=:,./-]+$/.test(w) ? w : shellQuote(w)))
      .join(' ');
  }

  #hostError(err: unknown, pending: number, action: string): Error {
    if (err instanceof PodUnreachableError || err instanceof PodSyncError) return err;
    // biome-ignore lint/plugin: only the cause of the CpErrors below, for something thrown that is no Error
    const e = err instanceof Error ? err : new Error(String(err));
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'string' && HOST_LEVEL.has(code))
      return new PodUnreachableError(this.#o.pod, this.endpoint, pending, this.#sshCheck(), {
        cause: e,
      });
    return new PodSyncError(this.#o.pod, action, { cause: e });
  }
}

function parentOf(rel: string): string {
  const i = rel.lastIndexOf('/');
  return i < 0 ? '' : rel.slice(0, i);
}

/** The local file went away (before or while it was read). */
function vanished(err: unknown): boolean {
  const e = err as { code?: unknown; cause?: { code?: unknown } };
  return e.code === 'ENOENT' || e.cause?.code === 'ENOENT';
}

function safeRel(rel: string): string {
  let norm: string;
  try {
    norm = checkRelativePath(rel);
  } catch (err) {
    throw new UnsafeSyncPathError(rel, (err as Error).message);
  }
  if (norm !== rel) throw new UnsafeSyncPathError(rel, `it normalises to ${norm}`);
  return norm;
}

function isPerFile(err: unknown): boolean {
  if (err instanceof UnsafeSyncPathError || err instanceof UnsafePathError) return true;
  // An SFTP status from the server (permission denied, not a directory) repeats on every try.
  if (err instanceof TransportError)
    return PER_FILE.has(err.code) || (err.code === 'TRANSPORT_SFTP' && !isRetryable(err));
  // So do local read errors (permissions, a file turned directory), but a transient errno.
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && /^E[A-Z0-9]+$/.test(code) && !isRetryable(err);
}
