import type { FileHandle } from 'node:fs/promises';
import { open, stat } from 'node:fs/promises';
import type { StampCache } from './stamps.js';
import type { LogChunk, Logger } from './types.js';

const CHUNK_BYTES = 1 << 20;

interface Tail {
  fh: FileHandle | undefined;
  ino: bigint;
  offset: number;
  running: Promise<void> | undefined;
  again: boolean;
  flags: { truncated?: boolean; rotated?: boolean };
}

export interface LogTailerOptions {
  rootAbs: string;
  cache: StampCache;
  onLog: (chunk: LogChunk) => Promise<void>;
  /** Called after an offset was acknowledged, so the cache gets persisted. */
  onCommit: () => void;
  retryInitialMs: number;
  retryMaxMs: number;
  logger: Logger;
  stats: { logChunks: number; logBytes: number; retries: number };
}

/**
 * `tail -F` for files under the `log` policy: streams appended bytes in order, detects
 * truncation (the file shrank) and rotation (the path names another inode; the old file is
 * read to its end first). Offsets persist only after onLog resolves, so a restart resumes
 * where the consumer stopped acknowledging.
 */
export class LogTailer {
  private readonly tails = new Map<string, Tail>();
  private closing = false;

  constructor(private readonly o: LogTailerOptions) {}

  get busy(): boolean {
    for (const t of this.tails.values()) if (t.running) return true;
    return false;
  }

  /** Something happened to `rel`: read whatever is new. */
  poke(rel: string): void {
    if (this.closing) return;
    let t = this.tails.get(rel);
    if (!t) {
      t = { fh: undefined, ino: -1n, offset: 0, running: undefined, again: false, flags: {} };
      this.tails.set(rel, t);
    }
    if (t.running) {
      t.again = true;
      return;
    }
    const tail = t;
    tail.running = this.run(rel, tail)
      .catch((err: unknown) => this.o.logger.warn({ err, path: rel }, 'log tail failed'))
      .finally(() => {
        tail.running = undefined;
        if (tail.again && !this.closing) this.poke(rel);
      });
  }

  async close(): Promise<void> {
    this.closing = true;
    await Promise.all([...this.tails.values()].map((t) => t.running));
    for (const t of this.tails.values()) await t.fh?.close().catch(() => {});
    this.tails.clear();
  }

  private async run(rel: string, t: Tail): Promise<void> {
    const abs = `${this.o.rootAbs}/${rel}`;
    for (;;) {
      t.again = false;
      const st = await stat(abs, { bigint: true }).catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT' || err.code === 'ENOTDIR') return undefined;
        throw err;
      });
      if (st && !st.isFile()) return;
      if (!t.fh) {
        if (!st) {
          this.forget(rel);
          return;
        }
        if (!(await this.openTail(abs, rel, t))) return;
        // Stat again: the path may have been replaced between the stat above and the open.
        continue;
      }
      const fh = t.fh;
      if (!st || st.ino !== t.ino) {
        // Rotation or deletion: whatever was appended to the old file before it went still counts.
        const size = Number((await fh.stat({ bigint: true })).size);
        await this.readTo(rel, t, fh, size);
        await fh.close();
        t.fh = undefined;
        if (this.closing) return;
        if (!st) {
          this.forget(rel);
          return;
        }
        t.flags.rotated = true;
        t.again = true;
        continue;
      }
      const size = Number((await fh.stat({ bigint: true })).size);
      if (size < t.offset) {
        t.offset = 0;
        t.flags.truncated = true;
      }
      await this.readTo(rel, t, fh, size);
      if (!t.again || this.closing) return;
    }
  }

  private async openTail(abs: string, rel: string, t: Tail): Promise<boolean> {
    let fh: FileHandle;
    try {
      fh = await open(abs, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
    const st = await fh.stat({ bigint: true });
    t.fh = fh;
    const saved = this.o.cache.logs.get(rel);
    const rotated = t.flags.rotated === true;
    t.ino = st.ino;
    t.offset = 0;
    if (saved && saved.ino === st.ino) {
      if (Number(st.size) >= saved.offset) t.offset = saved.offset;
      else t.flags.truncated = true;
    } else if (saved && !rotated) {
      t.flags.rotated = true;
    }
    return true;
  }

  private async readTo(rel: string, t: Tail, fh: FileHandle, size: number): Promise<void> {
    while (t.offset < size || t.flags.truncated || t.flags.rotated) {
      const want = Math.min(CHUNK_BYTES, size - t.offset);
      const buf = new Uint8Array(Math.max(0, want));
      const { bytesRead } = want > 0 ? await fh.read(buf, 0, want, t.offset) : { bytesRead: 0 };
      // An empty chunk still carries a truncation or rotation the consumer must hear about.
      if (bytesRead === 0 && !t.flags.truncated && !t.flags.rotated) return;
      const chunk: LogChunk = { path: rel, offset: t.offset, data: buf.subarray(0, bytesRead) };
      if (t.flags.truncated) chunk.truncated = true;
      if (t.flags.rotated) chunk.rotated = true;
      if (!(await this.deliver(chunk))) return;
      t.flags = {};
      t.offset += bytesRead;
      this.o.stats.logChunks++;
      this.o.stats.logBytes += bytesRead;
      this.o.cache.setLog(rel, { ino: t.ino, offset: t.offset });
      this.o.onCommit();
      if (bytesRead === 0) return;
    }
  }

  /** Retries with backoff until acknowledged; false if closing stopped it. */
  private async deliver(chunk: LogChunk): Promise<boolean> {
    let delay = this.o.retryInitialMs;
    for (;;) {
      try {
        await this.o.onLog(chunk);
        return true;
      } catch (err) {
        this.o.stats.retries++;
        this.o.logger.warn(
          { err, path: chunk.path, offset: chunk.offset, retryInMs: delay },
          'onLog rejected; retrying the same chunk',
        );
      }
      if (this.closing) return false;
      await new Promise((r) => setTimeout(r, delay));
      if (this.closing) return false;
      delay = Math.min(delay * 2, this.o.retryMaxMs);
    }
  }

  private forget(rel: string): void {
    this.tails.delete(rel);
    if (this.o.cache.logs.has(rel)) {
      this.o.cache.setLog(rel, undefined);
      this.o.onCommit();
    }
  }
}
