import type { BigIntStats } from 'node:fs';
import { stat } from 'node:fs/promises';
import { hashFile, isRacy, type Stamp } from '@computepods/fswatch';

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

  /** The file's digest: from its kept stamp when its stat still matches, else read and hashed. */
  async digest(full: string): Promise<FileDigest> {
    const verifiedNs = BigInt(Date.now()) * 1_000_000n;
    const st = await stat(full, { bigint: true });
    const size = Number(st.size);
    const kept = this.#stamps.get(full);
    if (
      kept &&
      kept.ctimeNs === st.ctimeNs &&
      kept.mtimeNs === st.mtimeNs &&
      kept.size === size &&
      kept.ino === st.ino
    ) {
      this.hits++;
      return { sha256: kept.sha256, size, mtimeNs: String(st.mtimeNs), stamp: statStamp(st) };
    }
    // Bytes written after the stat set a later ctime (the stamp is not racy): a stamp kept here
    // with other bytes' hash never matches again.
    const sha256 = await hashFile(full);
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
