import { mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { StampFileError } from './errors.js';

/** What we know about a file's bytes, and the stat that proved it. */
export interface Stamp {
  mtimeNs: bigint;
  ctimeNs: bigint;
  size: number;
  ino: bigint;
  sha256: string;
  /** Wall clock (ns) just before the stat that went with the hash. */
  verifiedNs: bigint;
}

/** How far a `log` file has been streamed and acknowledged. */
export interface LogOffset {
  ino: bigint;
  offset: number;
}

/**
 * A stat match proves nothing when the file could have changed again within the same
 * timestamp tick after we hashed it (git's "racy clean" entries). ctime is used rather than
 * mtime because every write sets it to the kernel's clock and nobody can set it back or
 * forward (`touch -d`), so it is exactly the tick of the last change.
 */
export function isRacy(s: Stamp, windowNs: bigint): boolean {
  return s.ctimeNs + windowNs > s.verifiedNs;
}

export function sameStat(
  s: Stamp,
  mtimeNs: bigint,
  ctimeNs: bigint,
  size: number,
  ino: bigint,
): boolean {
  return s.mtimeNs === mtimeNs && s.ctimeNs === ctimeNs && s.size === size && s.ino === ino;
}

/** Result of comparing a scanned stat with the stamp of a path. */
export const Compare = {
  /** No stamp for the path. */
  Unknown: 0,
  /** Same stat and not racy: the bytes are what the stamp says. */
  Same: 1,
  /** Different stat, or racy: read the bytes. */
  Differs: 2,
} as const;
export type Compare = (typeof Compare)[keyof typeof Compare];

// File layout (little-endian), version 2:
//   magic "CPFSWST2" | u32 files | u32 logs | u32 pathBytes | u32 logPathBytes
//   files × 5 i64 (mtimeNs, ctimeNs, size, ino, verifiedNs) | files × 32-byte SHA-256
//   logs × 2 i64 (ino, offset) | paths joined by NUL (UTF-8) | log paths joined by NUL
//   "END\0" | u32 files
// Binary and columnar so that a restart over 100k files compares stats as 32-bit words
// without creating a BigInt or a string per file; a Stamp object is only built on demand.
const MAGIC = Buffer.from('CPFSWST2');
const HEAD = 24;
const WORDS = 10;

interface Loaded {
  /** 10 words an entry: the five i64 fields as (low, high) pairs. */
  u32: Uint32Array;
  i64: BigInt64Array;
  shas: Buffer;
}

/**
 * The acknowledged state: stamps of files whose events the consumer accepted, and log
 * offsets it accepted. Written to a temp file and renamed, so a crash leaves the old or
 * the new file, never half of one.
 */
export class StampCache {
  /** A materialised Stamp, or the index of an entry still in the loaded columns. */
  private readonly files = new Map<string, Stamp | number>();
  readonly logs = new Map<string, LogOffset>();
  private loaded: Loaded | undefined;
  /** inode → path, built on first use (only needed when an unknown path appears). */
  private byIno: Map<bigint, string> | undefined;
  private dirty = false;

  get size(): number {
    return this.files.size;
  }

  has(path: string): boolean {
    return this.files.has(path);
  }

  keys(): IterableIterator<string> {
    return this.files.keys();
  }

  get(path: string): Stamp | undefined {
    const v = this.files.get(path);
    if (typeof v !== 'number') return v;
    // Materialised once and kept, so that a path's stamp keeps its identity.
    const s = this.materialise(v);
    this.files.set(path, s);
    return s;
  }

  /**
   * Compares a scanned stat — 8 words at `off` in `w`: mtime, ctime, size, ino as
   * (low, high) pairs — with the stamp of `path`, without allocating for loaded entries.
   */
  compare(path: string, w: Uint32Array, off: number, windowNs: number): Compare {
    const v = this.files.get(path);
    if (v === undefined) return Compare.Unknown;
    if (typeof v === 'number') {
      const u = this.loaded!.u32;
      const b = v * WORDS;
      for (let i = 0; i < 8; i++) if (u[b + i] !== w[off + i]) return Compare.Differs;
      // Racy check in float: ns since 1970 lose < 1 µs in a double, far below the window.
      const ctime = (u[b + 3]! | 0) * 4294967296 + u[b + 2]!;
      const verified = (u[b + 9]! | 0) * 4294967296 + u[b + 8]!;
      return verified - ctime < windowNs + 2000 ? Compare.Differs : Compare.Same;
    }
    const big = (i: number) => (BigInt(w[off + i + 1]! | 0) << 32n) | BigInt(w[off + i]!);
    if (
      !sameStat(v, big(0), big(2), Number(big(4)), BigInt.asUintN(64, big(6))) ||
      isRacy(v, BigInt(windowNs))
    ) {
      return Compare.Differs;
    }
    return Compare.Same;
  }

  pathOfIno(ino: bigint): string | undefined {
    if (!this.byIno) {
      this.byIno = new Map();
      for (const [p, v] of this.files) {
        const i = typeof v === 'number' ? BigInt.asUintN(64, this.loaded!.i64[v * 5 + 3]!) : v.ino;
        this.byIno.set(i, p);
      }
    }
    return this.byIno.get(ino);
  }

  set(path: string, s: Stamp): void {
    if (this.byIno) {
      const old = this.files.has(path) ? this.get(path) : undefined;
      if (old && old.ino !== s.ino && this.byIno.get(old.ino) === path) this.byIno.delete(old.ino);
      this.byIno.set(s.ino, path);
    }
    this.files.set(path, s);
    this.dirty = true;
  }

  delete(path: string): void {
    if (!this.files.has(path)) return;
    if (this.byIno) {
      const old = this.get(path)!;
      if (this.byIno.get(old.ino) === path) this.byIno.delete(old.ino);
    }
    this.files.delete(path);
    this.dirty = true;
  }

  setLog(path: string, o: LogOffset | undefined): void {
    if (o) this.logs.set(path, o);
    else if (!this.logs.delete(path)) return;
    this.dirty = true;
  }

  get isDirty(): boolean {
    return this.dirty;
  }

  private materialise(i: number): Stamp {
    const { i64, shas } = this.loaded!;
    const b = i * 5;
    return {
      mtimeNs: i64[b]!,
      ctimeNs: i64[b + 1]!,
      size: Number(i64[b + 2]!),
      ino: BigInt.asUintN(64, i64[b + 3]!),
      verifiedNs: i64[b + 4]!,
      sha256: shas.toString('hex', i * 32, i * 32 + 32),
    };
  }

  /** Loads `file`; a missing file is an empty cache, a corrupt one throws StampFileError. */
  async load(file: string): Promise<void> {
    let buf: Buffer;
    try {
      buf = await readFile(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw new StampFileError(file, 'read', { cause: err });
    }
    try {
      this.parse(buf);
    } catch (err) {
      this.files.clear();
      this.logs.clear();
      this.loaded = undefined;
      throw new StampFileError(file, 'parse', { cause: err });
    }
    this.byIno = undefined;
    this.dirty = false;
  }

  private parse(raw: Buffer): void {
    if (raw.length < HEAD + 8 || !raw.subarray(0, 8).equals(MAGIC)) {
      throw new Error('not a stamp file of this version');
    }
    // Typed-array views need 8-byte alignment.
    const buf = raw.byteOffset % 8 === 0 ? raw : Buffer.from(raw);
    const n = buf.readUInt32LE(8);
    const nLogs = buf.readUInt32LE(12);
    const pathBytes = buf.readUInt32LE(16);
    const logPathBytes = buf.readUInt32LE(20);
    const shaAt = HEAD + n * 40;
    const logAt = shaAt + n * 32;
    const pathsAt = logAt + nLogs * 16;
    const logPathsAt = pathsAt + pathBytes;
    const endAt = logPathsAt + logPathBytes;
    if (
      buf.length !== endAt + 8 ||
      buf.toString('latin1', endAt, endAt + 4) !== 'END\0' ||
      buf.readUInt32LE(endAt + 4) !== n
    ) {
      throw new Error('the file is incomplete or its lengths disagree');
    }
    const ab = buf.buffer;
    const o = buf.byteOffset;
    const loaded: Loaded = {
      u32: new Uint32Array(ab, o + HEAD, n * WORDS),
      i64: new BigInt64Array(ab, o + HEAD, n * 5),
      shas: buf.subarray(shaAt, logAt),
    };
    const paths = n === 0 ? [] : buf.toString('utf8', pathsAt, logPathsAt).split('\0');
    if (paths.length !== n) throw new Error('path count disagrees');
    for (let i = 0; i < n; i++) this.files.set(paths[i]!, i);
    this.loaded = loaded;
    const logPaths = nLogs === 0 ? [] : buf.toString('utf8', logPathsAt, endAt).split('\0');
    if (logPaths.length !== nLogs) throw new Error('log path count disagrees');
    const logs = new BigInt64Array(ab, o + logAt, nLogs * 2);
    for (let i = 0; i < nLogs; i++) {
      this.logs.set(logPaths[i]!, {
        ino: BigInt.asUintN(64, logs[i * 2]!),
        offset: Number(logs[i * 2 + 1]!),
      });
    }
  }

  serialise(): Buffer {
    const n = this.files.size;
    const nLogs = this.logs.size;
    const paths = Buffer.from([...this.files.keys()].join('\0'));
    const logPaths = Buffer.from([...this.logs.keys()].join('\0'));
    const shaAt = HEAD + n * 40;
    const logAt = shaAt + n * 32;
    const pathsAt = logAt + nLogs * 16;
    const endAt = pathsAt + paths.length + logPaths.length;
    const buf = Buffer.alloc(endAt + 8);
    MAGIC.copy(buf, 0);
    buf.writeUInt32LE(n, 8);
    buf.writeUInt32LE(nLogs, 12);
    buf.writeUInt32LE(paths.length, 16);
    buf.writeUInt32LE(logPaths.length, 20);
    const i64 = new BigInt64Array(buf.buffer, buf.byteOffset + HEAD, n * 5 + 0);
    const u32 = new Uint32Array(buf.buffer, buf.byteOffset + HEAD, n * WORDS);
    let i = 0;
    for (const v of this.files.values()) {
      if (typeof v === 'number') {
        // Unchanged since load: copy the words and the digest as they are.
        const l = this.loaded!;
        u32.set(l.u32.subarray(v * WORDS, v * WORDS + WORDS), i * WORDS);
        l.shas.copy(buf, shaAt + i * 32, v * 32, v * 32 + 32);
      } else {
        i64[i * 5] = v.mtimeNs;
        i64[i * 5 + 1] = v.ctimeNs;
        i64[i * 5 + 2] = BigInt(v.size);
        i64[i * 5 + 3] = BigInt.asIntN(64, v.ino);
        i64[i * 5 + 4] = v.verifiedNs;
        buf.write(v.sha256, shaAt + i * 32, 32, 'hex');
      }
      i++;
    }
    const logs = new BigInt64Array(buf.buffer, buf.byteOffset + logAt, nLogs * 2);
    let j = 0;
    for (const l of this.logs.values()) {
      logs[j * 2] = BigInt.asIntN(64, l.ino);
      logs[j * 2 + 1] = BigInt(l.offset);
      j++;
    }
    paths.copy(buf, pathsAt);
    logPaths.copy(buf, pathsAt + paths.length);
    buf.write('END\0', endAt, 'latin1');
    buf.writeUInt32LE(n, endAt + 4);
    return buf;
  }

  /** Writes atomically: temp file, fsync, rename, fsync of the directory. */
  async save(file: string): Promise<void> {
    const data = this.serialise();
    this.dirty = false;
    const tmp = `${file}.tmp-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
    try {
      await mkdir(dirname(file), { recursive: true });
      const fh = await open(tmp, 'w', 0o644);
      try {
        await fh.writeFile(data);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, file);
    } catch (err) {
      this.dirty = true;
      await unlink(tmp).catch(() => {});
      throw new StampFileError(file, 'write', { cause: err });
    }
    try {
      const dh = await open(dirname(file), 'r');
      try {
        await dh.sync();
      } finally {
        await dh.close();
      }
    } catch {
      // Some filesystems refuse fsync on a directory; the rename is still atomic there.
    }
  }
}
