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

const HEADER = 'cp-fswatch-stamps 1';

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

// Tabs and newlines can occur in file names; escaping keeps one record per line.
const NEEDS_ESCAPE = /[\\\t\n\r]/;
function escapePath(p: string): string {
  if (!NEEDS_ESCAPE.test(p)) return p;
  return p.replace(/[\\\t\n\r]/g, (c) =>
    c === '\\' ? '\\\\' : c === '\t' ? '\\t' : c === '\n' ? '\\n' : '\\r',
  );
}
function unescapePath(p: string): string {
  if (!p.includes('\\')) return p;
  return p.replace(/\\(.)/g, (_, c: string) =>
    c === 't' ? '\t' : c === 'n' ? '\n' : c === 'r' ? '\r' : c,
  );
}

/**
 * The acknowledged state: stamps of files whose events the consumer accepted, and log
 * offsets it accepted. Persisted as one line per entry (100k entries load in well under
 * 100 ms), written to a temp file and renamed so a crash leaves the old or the new file.
 */
export class StampCache {
  readonly files = new Map<string, Stamp>();
  readonly logs = new Map<string, LogOffset>();
  /** inode → path, so a renamed file is recognised without reading it. */
  private readonly byIno = new Map<bigint, string>();
  private dirty = false;

  get size(): number {
    return this.files.size;
  }

  get(path: string): Stamp | undefined {
    return this.files.get(path);
  }

  pathOfIno(ino: bigint): string | undefined {
    return this.byIno.get(ino);
  }

  set(path: string, s: Stamp): void {
    const old = this.files.get(path);
    if (old && old.ino !== s.ino && this.byIno.get(old.ino) === path) this.byIno.delete(old.ino);
    this.files.set(path, s);
    this.byIno.set(s.ino, path);
    this.dirty = true;
  }

  delete(path: string): void {
    const old = this.files.get(path);
    if (!old) return;
    if (this.byIno.get(old.ino) === path) this.byIno.delete(old.ino);
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

  /** Loads `file`; a missing file is an empty cache, a corrupt one throws StampFileError. */
  async load(file: string): Promise<void> {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw new StampFileError(file, 'read', { cause: err });
    }
    try {
      this.parse(text);
    } catch (err) {
      this.files.clear();
      this.logs.clear();
      this.byIno.clear();
      throw new StampFileError(file, 'parse', { cause: err });
    }
    this.dirty = false;
  }

  private parse(text: string): void {
    const lines = text.split('\n');
    if (lines[0] !== HEADER) throw new Error(`first line is not "${HEADER}"`);
    // The writer ends with an "end" line, so a file cut short is recognised as corrupt.
    let ended = false;
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i]!;
      if (line === '') continue;
      const f = line.split('\t');
      if (f[0] === 'F' && f.length === 8) {
        const s: Stamp = {
          mtimeNs: BigInt(f[2]!),
          ctimeNs: BigInt(f[3]!),
          size: Number(f[4]),
          ino: BigInt(f[5]!),
          sha256: f[6]!,
          verifiedNs: BigInt(f[7]!),
        };
        const p = unescapePath(f[1]!);
        this.files.set(p, s);
        this.byIno.set(s.ino, p);
      } else if (f[0] === 'L' && f.length === 4) {
        this.logs.set(unescapePath(f[1]!), { ino: BigInt(f[2]!), offset: Number(f[3]) });
      } else if (f[0] === 'end' && f.length === 2 && Number(f[1]) === i - 1) {
        ended = true;
      } else {
        throw new Error(`line ${i + 1} is malformed`);
      }
    }
    if (!ended) throw new Error('the file is incomplete (no end line)');
  }

  serialise(): string {
    const out: string[] = [HEADER];
    for (const [p, s] of this.files) {
      out.push(
        `F\t${escapePath(p)}\t${s.mtimeNs}\t${s.ctimeNs}\t${s.size}\t${s.ino}\t${s.sha256}\t${s.verifiedNs}`,
      );
    }
    for (const [p, o] of this.logs) out.push(`L\t${escapePath(p)}\t${o.ino}\t${o.offset}`);
    out.push(`end\t${out.length - 1}`);
    out.push('');
    return out.join('\n');
  }

  /** Writes atomically: temp file, fsync, rename, fsync of the directory. */
  async save(file: string): Promise<void> {
    const text = this.serialise();
    this.dirty = false;
    const tmp = `${file}.tmp-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
    try {
      await mkdir(dirname(file), { recursive: true });
      const fh = await open(tmp, 'w', 0o644);
      try {
        await fh.writeFile(text);
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
