import { randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { type FileHandle, mkdir, open, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { finished } from 'node:stream/promises';
import { z } from 'zod';
import { type ReadParts, readWhole, type StoredPart } from './snapshot-read.js';
import type { SnapshotHead } from './snapshot-store.js';

/**
 * The stored snapshot's parts copied into MajorDomo's state dir, so a restart on the same machine
 * reads a file instead of the ~45 MB of parts over NATS (100k artefacts). KV stays the truth: a
 * copy is used only when it names the head stored in KV now (its id and sha256), and its parts go
 * through the very checks of a read from KV (readWhole, as readParts: every part there, the
 * length and sha256 of all against that head, then the graph's length and the meta's gzip),
 * read at once (one read, one unzip), not a part at a time. A copy of another
 * snapshot, damaged or cut short is not used (the caller logs why) and the parts are read from
 * KV, which writes the copy again.
 *
 * The file: the parts one after another, then the trailer's JSON (CopyTrailer: the head's id and
 * sha256, each part's length), then that JSON's length as 4 bytes (big-endian). Written to a
 * temporary name beside it and renamed: a reader never sees half a copy.
 */
const CopyTrailer = z.object({
  id: z.string().min(1),
  sha256: z.string().min(1),
  parts: z.array(z.number().int().nonnegative()),
});
type CopyTrailer = z.infer<typeof CopyTrailer>;

/** A trailer longer than this is no copy of ours (100,000 parts' lengths fit well under it). */
const MAX_TRAILER = 4 * 1024 * 1024;

/** An open copy: its parts by key (`part.<n>`), as the snapshot bucket's get gives them. */
export interface OpenCopy {
  get(key: string): Promise<StoredPart | undefined>;
  /** All its parts at once, through readParts' checks (readWhole: one read, one unzip). */
  read(): Promise<ReadParts>;
  close(): Promise<void>;
}

/** A copy being written, a part at a time in order: kept by done(), dropped by abandon(). */
export interface CopyWriter {
  add(part: Uint8Array): void;
  done(): Promise<void>;
  abandon(): Promise<void>;
}

export class LocalSnapshot {
  constructor(readonly file: string) {}

  /** The copy of `project`'s snapshot in `dir` (MajorDomo's state dir). */
  static in(dir: string, project: string): LocalSnapshot {
    return new LocalSnapshot(join(dir, `snapshot-${project}.bin`));
  }

  /** The copy opened for reading when it says it copies `head`; otherwise why not. */
  async open(head: SnapshotHead): Promise<OpenCopy | { why: string }> {
    let fh: FileHandle;
    try {
      fh = await open(this.file, 'r');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      return { why: code === 'ENOENT' ? 'no local copy' : `not readable: ${code}` };
    }
    try {
      const found = await trailerOf(fh);
      const why = typeof found === 'string' ? found : mismatch(found, head);
      if (why !== undefined || typeof found === 'string') {
        await fh.close();
        return { why: why ?? 'unreadable' };
      }
      const offsets: number[] = [];
      let at = 0;
      for (const l of found.trailer.parts) {
        offsets.push(at);
        at += l;
      }
      const lengths = found.trailer.parts;
      const metaBytes = lengths.slice(0, head.metaParts).reduce((n, l) => n + l, 0);
      return {
        async read() {
          // Placed so the graph's bytes start 8-aligned: depgraph reads its words in place then
          // (a Uint32Array over them), where it copies words at any other offset.
          const pad = (8 - (metaBytes % 8)) % 8;
          const data = Buffer.from(new ArrayBuffer(pad + found.dataBytes), pad, found.dataBytes);
          let got = 0;
          while (got < data.length) {
            const { bytesRead } = await fh.read(data, got, data.length - got, got);
            if (bytesRead === 0) break;
            got += bytesRead;
          }
          return readWhole(head, data.subarray(0, got), metaBytes);
        },
        async get(key) {
          const n = Number(/^part\.(\d+)$/.exec(key)?.[1] ?? Number.NaN);
          const length = lengths[n];
          const offset = offsets[n];
          if (length === undefined || offset === undefined) return undefined;
          const value = Buffer.allocUnsafe(length);
          const { bytesRead } = await fh.read(value, 0, length, offset);
          return { operation: 'PUT', value: value.subarray(0, bytesRead) };
        },
        close: () => fh.close(),
      };
    } catch (err) {
      await fh.close().catch(() => undefined);
      return { why: `not readable: ${(err as Error).message}` };
    }
  }

  /** Starts a copy of `head`'s parts (written to a temporary name until done). */
  async writer(head: SnapshotHead): Promise<CopyWriter> {
    const dir = join(this.file, '..');
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const tmp = `${this.file}.${randomUUID()}.tmp`;
    const out = createWriteStream(tmp, { mode: 0o600 });
    out.on('error', () => undefined); // reported by done()
    const lengths: number[] = [];
    return {
      add(part) {
        lengths.push(part.length);
        out.write(part);
      },
      done: async () => {
        try {
          const trailer: CopyTrailer = { id: head.id, sha256: head.sha256, parts: lengths };
          const json = Buffer.from(JSON.stringify(trailer));
          const size = Buffer.alloc(4);
          size.writeUInt32BE(json.length);
          out.end(Buffer.concat([json, size]));
          await finished(out);
          await rename(tmp, this.file);
        } catch (err) {
          await rm(tmp, { force: true });
          throw err;
        }
      },
      abandon: async () => {
        out.destroy();
        await rm(tmp, { force: true });
      },
    };
  }
}

/** Why a copy with this trailer is not one of `head`, if it is not. */
function mismatch(
  found: { trailer: CopyTrailer; dataBytes: number },
  head: SnapshotHead,
): string | undefined {
  const { trailer, dataBytes } = found;
  if (trailer.id !== head.id || trailer.sha256 !== head.sha256) return 'a copy of another snapshot';
  if (trailer.parts.length !== head.parts || trailer.parts.reduce((n, l) => n + l, 0) !== dataBytes)
    return 'its parts do not add up to it';
  return undefined;
}

/** The trailer of an open copy and how many bytes of parts precede it, or why it has none. */
async function trailerOf(
  fh: FileHandle,
): Promise<{ trailer: CopyTrailer; dataBytes: number } | string> {
  const { size } = await fh.stat();
  if (size < 4) return 'cut short';
  const len = Buffer.alloc(4);
  await fh.read(len, 0, 4, size - 4);
  const jsonBytes = len.readUInt32BE(0);
  if (jsonBytes > MAX_TRAILER || jsonBytes > size - 4) return 'cut short';
  const json = Buffer.alloc(jsonBytes);
  await fh.read(json, 0, jsonBytes, size - 4 - jsonBytes);
  let parsed: unknown;
  try {
    parsed = JSON.parse(json.toString('utf8'));
  } catch {
    return 'its trailer is not JSON';
  }
  const trailer = CopyTrailer.safeParse(parsed);
  if (!trailer.success) return 'its trailer is not a copy trailer';
  return { trailer: trailer.data, dataBytes: size - 4 - jsonBytes };
}
