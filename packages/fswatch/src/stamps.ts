import { mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { StampFileError } from './errors.js';
import { int64At, int64NumberAt } from './words.js';

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

// File layout (little-endian), version 4:
//   magic "CPFSWST4" | u32 files | u32 logs | u32 dirs | u32 dirBytes | u32 nameBytes | u32 logPathBytes
//   files × 5 i64 (mtimeNs, ctimeNs, size, ino, verifiedNs) | files × 32-byte SHA-256
//   dirs × 2 u32 (files in the directory, bytes of its NUL-joined names) | logs × 2 i64 (ino, offset)
//   directory names (NUL-joined) | each directory's file names, sorted, NUL-joined, back to back
//   | log paths (NUL-joined) | "END\0" | u32 files
// Binary, columnar, grouped by directory with names in the order the scan worker reports
// them (sorted). A restart compares a directory's joined names with one string comparison
// and its stats as 32-bit words: no per-file string, map entry, BigInt or digest is built.
const MAGIC = Buffer.from('CPFSWST4');
const HEAD = 32;
const WORDS = 10;
const align8 = (n: number) => (n + 7) & ~7;

interface Loaded {
  /** 10 words an entry: the five i64 fields as (low, high) pairs. */
  u32: Uint32Array;
  shas: Buffer;
}

const NOTHING_LOADED: Loaded = { u32: new Uint32Array(0), shas: Buffer.alloc(0) };

/** A materialised Stamp, or the index of an entry still in the loaded columns. */
export type StampEntry = Stamp | number;

/** A directory whose stamps are exactly as loaded: entry `start + i` is the i-th name. */
export interface PristineDir {
  /** Its names, sorted, NUL-joined. */
  readonly joined: string;
  readonly start: number;
  readonly count: number;
}

/**
 * A changed directory's names as the file lists them: sorted, and NUL-joined. Kept from save to
 * save while no name comes or goes (a build rewrites the same outputs): sorting a directory's
 * names at every save was ~5 % of the watcher's CPU in pnpm bench cbuild (600 names, a save a
 * second).
 */
interface SortedNames {
  readonly sorted: readonly string[];
  readonly joined: Buffer;
}

/** A directory changed since load: its entries by name, and their order once a save needed it. */
interface ChangedDir {
  readonly joined: undefined;
  readonly map: Map<string, StampEntry>;
  /** Undefined once a name came or went, until the next save sorts them. */
  names: SortedNames | undefined;
}

/** One directory's stamps: untouched since load (name → entry built on first lookup), or not. */
type Group = (PristineDir & { map: Map<string, StampEntry> | undefined }) | ChangedDir;

function splitPath(path: string): [string, string] {
  const i = path.lastIndexOf('/');
  return i < 0 ? ['', path] : [path.slice(0, i), path.slice(i + 1)];
}

const joinPath = (dir: string, name: string) => (dir === '' ? name : `${dir}/${name}`);

/** The order the scan worker reports names in (UTF-16 code units, Array#sort's default). */
const byName = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

function sortedNames(map: ReadonlyMap<string, StampEntry>): SortedNames {
  const sorted = [...map.keys()].sort(byName);
  return { sorted, joined: Buffer.from(sorted.join('\0')) };
}

/**
 * The acknowledged state: stamps of files whose events the consumer accepted, and log
 * offsets it accepted. Written to a temp file and renamed, so a crash leaves the old or
 * the new file, never half of one.
 */
export class StampCache {
  private readonly dirs = new Map<string, Group>();
  private count = 0;
  readonly logs = new Map<string, LogOffset>();
  /** Columns of the loaded file, which numeric entries index. */
  private loaded: Loaded = NOTHING_LOADED;
  /** inode → path, built on first use (only needed when an unknown path appears). */
  private byIno: Map<bigint, string> | undefined;
  private dirty = false;

  get size(): number {
    return this.count;
  }

  has(path: string): boolean {
    const [d, n] = splitPath(path);
    return this.mapOf(d)?.has(n) ?? false;
  }

  /** Every stamped path (builds the strings: not for hot loops). */
  *keys(): Generator<string> {
    for (const [d, g] of this.dirs) for (const n of this.entries(g).keys()) yield joinPath(d, n);
  }

  /** The entries of one directory, keyed by file name. */
  dir(dir: string): ReadonlyMap<string, StampEntry> | undefined {
    return this.mapOf(dir);
  }

  /** The directory's stamps if untouched since load (the scan's fast path). */
  pristine(dir: string): PristineDir | undefined {
    const g = this.dirs.get(dir);
    return g?.joined === undefined ? undefined : g;
  }

  dirNames(): IterableIterator<string> {
    return this.dirs.keys();
  }

  get(path: string): Stamp | undefined {
    const [d, n] = splitPath(path);
    const m = this.mapOf(d);
    if (!m) return undefined;
    const v = m.get(n);
    if (typeof v !== 'number') return v;
    // Materialised once and kept, so that a path's stamp keeps its identity.
    const s = this.materialise(v);
    m.set(n, s);
    return s;
  }

  private mapOf(dir: string): Map<string, StampEntry> | undefined {
    const g = this.dirs.get(dir);
    return g && this.entries(g);
  }

  /** A group's name → entry map, built from its joined names on first use. */
  private entries(g: Group): Map<string, StampEntry> {
    if (g.joined === undefined) return g.map;
    if (g.map) return g.map;
    const map = new Map<string, StampEntry>();
    if (g.count > 0) {
      let i = g.start;
      for (const name of g.joined.split('\0')) map.set(name, i++);
    }
    g.map = map;
    return map;
  }

  /** The group of `dir` for a change: materialised and no longer pristine. */
  private touch(dir: string): ChangedDir {
    const g = this.dirs.get(dir);
    if (g?.joined === undefined && g !== undefined) return g;
    const changed: ChangedDir = {
      joined: undefined,
      map: g ? this.entries(g) : new Map<string, StampEntry>(),
      names: undefined,
    };
    this.dirs.set(dir, changed);
    return changed;
  }

  /**
   * Compares a scanned stat — 8 words at `off` in `w`: mtime, ctime, size, ino as
   * (low, high) pairs — with an entry, without allocating for loaded entries.
   */
  compareEntry(v: StampEntry | undefined, w: Uint32Array, off: number, windowNs: number): Compare {
    if (v === undefined) return Compare.Unknown;
    if (typeof v === 'number') return this.compareIndex(v, w, off, windowNs);
    const big = (i: number) => int64At(w, off + i);
    if (
      !sameStat(v, big(0), big(2), Number(big(4)), BigInt.asUintN(64, big(6))) ||
      isRacy(v, BigInt(windowNs))
    ) {
      return Compare.Differs;
    }
    return Compare.Same;
  }

  /** compareEntry for the loaded entry number `i`. */
  compareIndex(i: number, w: Uint32Array, off: number, windowNs: number): Compare {
    const u = this.loaded.u32;
    const b = i * WORDS;
    for (let k = 0; k < 8; k++) if (u[b + k] !== w[off + k]) return Compare.Differs;
    // Racy check in float: ns since 1970 lose < 1 µs in a double, far below the window.
    const ctime = int64NumberAt(u, b + 2);
    const verified = int64NumberAt(u, b + 8);
    return verified - ctime < windowNs + 2000 ? Compare.Differs : Compare.Same;
  }

  pathOfIno(ino: bigint): string | undefined {
    if (!this.byIno) {
      this.byIno = new Map();
      for (const [d, g] of this.dirs) {
        for (const [n, v] of this.entries(g)) {
          const i =
            typeof v === 'number'
              ? BigInt.asUintN(64, int64At(this.loaded.u32, v * WORDS + 6))
              : v.ino;
          this.byIno.set(i, joinPath(d, n));
        }
      }
    }
    return this.byIno.get(ino);
  }

  set(path: string, s: Stamp): void {
    const [d, n] = splitPath(path);
    if (this.byIno) {
      const old = this.has(path) ? this.get(path) : undefined;
      if (old && old.ino !== s.ino && this.byIno.get(old.ino) === path) this.byIno.delete(old.ino);
      this.byIno.set(s.ino, path);
    }
    const g = this.touch(d);
    if (!g.map.has(n)) {
      this.count++;
      g.names = undefined;
    }
    g.map.set(n, s);
    this.dirty = true;
  }

  delete(path: string): void {
    const [d, n] = splitPath(path);
    if (!this.mapOf(d)?.has(n)) return;
    const old = this.byIno && this.get(path);
    if (old && this.byIno?.get(old.ino) === path) this.byIno.delete(old.ino);
    const g = this.touch(d);
    g.map.delete(n);
    g.names = undefined;
    if (g.map.size === 0) this.dirs.delete(d);
    this.count--;
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

  /**
   * True for a stamp read from the stamp file and not set since (this process has not had its
   * bytes acknowledged). The file is saved a while after each acknowledged batch, so it may be
   * behind what the consumer has: such a stamp is not proof of what was announced last.
   */
  fromFile(s: Stamp): boolean {
    return this.#fromFile.has(s);
  }
  readonly #fromFile = new WeakSet<Stamp>();

  private materialise(i: number): Stamp {
    const s = this.#materialise(i);
    this.#fromFile.add(s);
    return s;
  }

  #materialise(i: number): Stamp {
    const { u32, shas } = this.loaded;
    const b = i * WORDS;
    return {
      mtimeNs: int64At(u32, b),
      ctimeNs: int64At(u32, b + 2),
      size: Number(int64At(u32, b + 4)),
      ino: BigInt.asUintN(64, int64At(u32, b + 6)),
      verifiedNs: int64At(u32, b + 8),
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
      this.dirs.clear();
      this.count = 0;
      this.logs.clear();
      this.loaded = NOTHING_LOADED;
      throw new StampFileError(file, 'parse', { cause: err });
    }
    this.byIno = undefined;
    this.dirty = false;
  }

  // biome-ignore-start lint/plugin: parse's reasons are the cause of the StampFileError load throws
  private parse(raw: Buffer): void {
    if (raw.length < HEAD + 8 || !raw.subarray(0, 8).equals(MAGIC)) {
      throw new Error('not a stamp file of this version');
    }
    // Typed-array views need 8-byte alignment.
    const buf = raw.byteOffset % 8 === 0 ? raw : Buffer.from(raw);
    const n = buf.readUInt32LE(8);
    const nLogs = buf.readUInt32LE(12);
    const nDirs = buf.readUInt32LE(16);
    const dirBytes = buf.readUInt32LE(20);
    const nameBytes = buf.readUInt32LE(24);
    const logPathBytes = buf.readUInt32LE(28);
    const shaAt = HEAD + n * 40;
    const groupAt = shaAt + n * 32;
    const logAt = align8(groupAt + nDirs * 8);
    const dirsAt = logAt + nLogs * 16;
    const namesAt = dirsAt + dirBytes;
    const logPathsAt = namesAt + nameBytes;
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
    const split = (at: number, bytes: number, count: number) => {
      const parts = count === 0 ? [] : buf.toString('utf8', at, at + bytes).split('\0');
      if (parts.length !== count) throw new Error('name count disagrees');
      return parts;
    };
    const dirNames = split(dirsAt, dirBytes, nDirs);
    const groups = new Uint32Array(ab, o + groupAt, nDirs * 2);
    let start = 0;
    let at = namesAt;
    dirNames.forEach((dir, d) => {
      const count = groups[d * 2];
      const bytes = groups[d * 2 + 1];
      if (
        count === undefined ||
        bytes === undefined ||
        count === 0 ||
        start + count > n ||
        at + bytes > logPathsAt
      ) {
        throw new Error('directory groups disagree');
      }
      const joined = buf.toString('utf8', at, at + bytes);
      this.dirs.set(dir, { joined, start, count, map: undefined });
      start += count;
      at += bytes;
    });
    if (start !== n || at !== logPathsAt) throw new Error('directory groups disagree');
    this.count = n;
    this.loaded = {
      u32: new Uint32Array(ab, o + HEAD, n * WORDS),
      shas: buf.subarray(shaAt, groupAt),
    };
    const logPaths = split(logPathsAt, logPathBytes, nLogs);
    const logs = new Uint32Array(ab, o + logAt, nLogs * 4);
    logPaths.forEach((path, k) => {
      this.logs.set(path, {
        ino: BigInt.asUintN(64, int64At(logs, k * 4)),
        offset: Number(int64At(logs, k * 4 + 2)),
      });
    });
  }
  // biome-ignore-end lint/plugin: parse's reasons are the cause of the StampFileError load throws

  serialise(): Buffer {
    const n = this.count;
    const nLogs = this.logs.size;
    const nDirs = this.dirs.size;
    const dirBlob = Buffer.from([...this.dirs.keys()].join('\0'));
    // Each group's names, sorted like the scan reports them (pristine groups already are).
    const order: Array<
      | { pristine: PristineDir; joined: Buffer }
      | {
          pristine: undefined;
          map: Map<string, StampEntry>;
          names: readonly string[];
          joined: Buffer;
        }
    > = [];
    let nameBytes = 0;
    for (const g of this.dirs.values()) {
      if (g.joined !== undefined) {
        const joined = Buffer.from(g.joined);
        nameBytes += joined.length;
        order.push({ pristine: g, joined });
      } else {
        g.names ??= sortedNames(g.map);
        nameBytes += g.names.joined.length;
        order.push({
          pristine: undefined,
          map: g.map,
          names: g.names.sorted,
          joined: g.names.joined,
        });
      }
    }
    const logBlob = Buffer.from([...this.logs.keys()].join('\0'));
    const shaAt = HEAD + n * 40;
    const groupAt = shaAt + n * 32;
    const logAt = align8(groupAt + nDirs * 8);
    const dirsAt = logAt + nLogs * 16;
    const namesAt = dirsAt + dirBlob.length;
    const logPathsAt = namesAt + nameBytes;
    const endAt = logPathsAt + logBlob.length;
    const buf = Buffer.alloc(endAt + 8);
    MAGIC.copy(buf, 0);
    buf.writeUInt32LE(n, 8);
    buf.writeUInt32LE(nLogs, 12);
    buf.writeUInt32LE(nDirs, 16);
    buf.writeUInt32LE(dirBlob.length, 20);
    buf.writeUInt32LE(nameBytes, 24);
    buf.writeUInt32LE(logBlob.length, 28);
    const i64 = new BigInt64Array(buf.buffer, buf.byteOffset + HEAD, n * 5);
    const u32 = new Uint32Array(buf.buffer, buf.byteOffset + HEAD, n * WORDS);
    const groups = new Uint32Array(buf.buffer, buf.byteOffset + groupAt, nDirs * 2);
    const l = this.loaded;
    const copyLoaded = (from: number, to: number, count: number) => {
      u32.set(l.u32.subarray(from * WORDS, (from + count) * WORDS), to * WORDS);
      l.shas.copy(buf, shaAt + to * 32, from * 32, (from + count) * 32);
    };
    let i = 0;
    let at = namesAt;
    order.forEach((group, d) => {
      const { joined } = group;
      if (!group.pristine) {
        for (const name of group.names) {
          const v = group.map.get(name) as StampEntry;
          if (typeof v === 'number') copyLoaded(v, i, 1);
          else {
            i64[i * 5] = v.mtimeNs;
            i64[i * 5 + 1] = v.ctimeNs;
            i64[i * 5 + 2] = BigInt(v.size);
            i64[i * 5 + 3] = BigInt.asIntN(64, v.ino);
            i64[i * 5 + 4] = v.verifiedNs;
            buf.write(v.sha256, shaAt + i * 32, 32, 'hex');
          }
          i++;
        }
        groups[d * 2] = group.names.length;
      } else {
        // Untouched since load: one block copy of its columns.
        copyLoaded(group.pristine.start, i, group.pristine.count);
        i += group.pristine.count;
        groups[d * 2] = group.pristine.count;
      }
      groups[d * 2 + 1] = joined.length;
      joined.copy(buf, at);
      at += joined.length;
    });
    const logs = new BigInt64Array(buf.buffer, buf.byteOffset + logAt, nLogs * 2);
    let j = 0;
    for (const lo of this.logs.values()) {
      logs[j * 2] = BigInt.asIntN(64, lo.ino);
      logs[j * 2 + 1] = BigInt(lo.offset);
      j++;
    }
    dirBlob.copy(buf, dirsAt);
    logBlob.copy(buf, logPathsAt);
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
