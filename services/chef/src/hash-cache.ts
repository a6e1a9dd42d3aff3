import { createHash } from 'node:crypto';
import type { BigIntStats } from 'node:fs';
import { stat } from 'node:fs/promises';
import { hashFile, isRacy, type Stamp } from '@computepods/fswatch';
import { readWhole, withSmallFile } from './small-file.js';

/** A file's hash with the size and mtime (ns) MajorDomo records with it. */
export interface FileDigest {
  readonly sha256: string;
  readonly size: number;
  readonly mtimeNs: string;
  /** The stat the hash went with (statStamp): what a build compares after its task ran. */
  readonly stamp: string;
}

/** A file's state as a string: any write changes it (ctime cannot be set back). */
export function statStamp(st: BigIntStats): string {
  return `${st.mtimeNs}:${st.ctimeNs}:${st.size}:${st.ino}`;
}

/** The fswatcher's window: a change within 20 ms of the hash may share its ctime tick. */
const RACY_WINDOW_NS = 20_000_000n;

/**
 * Hashes of the workspace files this chef read, each kept with the stat it had when hashed, so
 * a file read again unchanged (a shared header, or an object hashed as a compile's output and
 * then as the link's input) costs a stat, not a read. The stamp is ctime, mtime, size and inode
 * (fswatch's model: every write sets ctime to the kernel's clock and nobody can set it back), and
 * a stamp within the clock's granularity of the hash (racy, as git says) is not kept: the file
 * could change again in the same tick. Callers confine paths first; this only hashes.
 */
export class HashCache {
  readonly #stamps = new Map<string, Stamp>();

  constructor(
    readonly racyWindowNs: bigint = RACY_WINDOW_NS,
    readonly max = 100_000,
  ) {}

  /** Files served from a kept stamp (for tests and figures). */
  hits = 0;

  get size(): number {
    return this.#stamps.size;
  }

  /**
   * The file's digest: from its kept stamp when its stat still matches, else read and hashed.
   * A regular file of at most SMALL_FILE_MAX bytes (a source, a header, an object) is stat'ed
   * and, unless its stamp is kept, read and hashed in this thread (small-file.ts), not through
   * the thread pool and the hashing workers. Anything else (bigger, not regular, unreadable,
   * changed while read) takes the asynchronous way, which also says why it cannot be hashed.
   */
  async digest(full: string): Promise<FileDigest> {
    const verifiedNs = BigInt(Date.now()) * 1_000_000n;
    const small = this.#digestSmall(full, verifiedNs);
    if (small) return small;
    const st = await stat(full, { bigint: true });
    // Bytes written after the stat set a later ctime (the stamp is not racy): a stamp kept here
    // with other bytes' hash never matches again.
    return this.#kept(full, st) ?? this.#keep(full, st, await hashFile(full), verifiedNs);
  }

  /** The digest of a small regular file, read in this thread; undefined: take the other way. */
  #digestSmall(full: string, verifiedNs: bigint): FileDigest | undefined {
    return withSmallFile(full, (fd, st) => {
      const kept = this.#kept(full, st);
      if (kept) return kept;
      const bytes = readWhole(fd, st);
      if (!bytes) return undefined;
      return this.#keep(full, st, createHash('sha256').update(bytes).digest('hex'), verifiedNs);
    });
  }

  /** The digest from the stamp kept for `full` when `st` still matches it. */
  #kept(full: string, st: BigIntStats): FileDigest | undefined {
    const size = Number(st.size);
    const kept = this.#stamps.get(full);
    if (
      !kept ||
      kept.ctimeNs !== st.ctimeNs ||
      kept.mtimeNs !== st.mtimeNs ||
      kept.size !== size ||
      kept.ino !== st.ino
    )
      return undefined;
    this.hits++;
    return { sha256: kept.sha256, size, mtimeNs: String(st.mtimeNs), stamp: statStamp(st) };
  }

  /** Keeps `st` with the hash of the bytes read after it, unless racy; the file's digest. */
  #keep(full: string, st: BigIntStats, sha256: string, verifiedNs: bigint): FileDigest {
    const size = Number(st.size);
    const stamp: Stamp = {
      mtimeNs: st.mtimeNs,
      ctimeNs: st.ctimeNs,
      size,
      ino: st.ino,
      sha256,
      verifiedNs,
    };
    this.#stamps.delete(full);
    if (!isRacy(stamp, this.racyWindowNs)) {
      this.#stamps.set(full, stamp);
      // The oldest written first out (a Map keeps insertion order).
      if (this.#stamps.size > this.max)
        this.#stamps.delete(this.#stamps.keys().next().value as string);
    }
    return { sha256, size, mtimeNs: String(st.mtimeNs), stamp: statStamp(st) };
  }
}
