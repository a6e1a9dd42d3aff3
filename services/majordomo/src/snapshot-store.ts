import { createHash, randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { type Bus, jsonPieces, type Logger, type TypedKv } from '@computepods/bus';
import { ArtefactRecord, buckets, RulesDeclared } from '@computepods/protocol';
import { z } from 'zod';
import { LocalSnapshot } from './snapshot-local.js';
import { type ReadParts, readParts } from './snapshot-read.js';
import { StoredRecords } from './snapshot-records.js';

/**
 * MajorDomo's snapshot: the graph it restored (depgraph's compact state) and what a restore reads
 * besides (artefact records, cycle passes, the declarations and goals it was planned with), with
 * the revision of the artefacts and traces buckets it reflects. A restart loads it and reads only
 * the keys written after those revisions (snapshot-tail.ts) instead of listing every bucket.
 *
 * Stored in KV `cp_<p>_snapshot` in parts `part.<n>` (each well under the server's max payload; a
 * new snapshot overwrites them, so the bucket does not grow): first the meta as gzipped JSON
 * (`metaParts` of them), then the graph as it is (depgraph's compact state, `graphBytes`; read
 * straight into the one buffer depgraph keeps, not unzipped and copied), then `head` with the
 * parts' length and sha256. A reader takes `head` and its parts: parts that do not hash to it (a
 * save cut short, one under way) are no snapshot, and the full restore runs.
 *
 * Bump FORMAT when the payload or what a restore derives from it changes: a snapshot of another
 * format is ignored, as one of another pass limit (the graph would plan differently). 4: the
 * declarations planned with are kept as planText (chef and rules), no longer whole (with the
 * chef's $SRV id, which made a chef's restart cost the next restart a full restore); a snapshot
 * of 3 is ignored once, at the first restart after the upgrade, which restores in full. 5: a
 * record leaves out what the graph holds (its path, and its hashes and producer where equal:
 * snapshot-records.ts); a snapshot of 4 is ignored once likewise. 6: the records by column, the
 * strings they repeat held once (snapshot-records.ts); a snapshot of 5 is ignored once likewise.
 * 7: those columns as runs (snapshot-records.ts runsOf).
 *
 * The artefact records are not parsed again with zod at a load (at 100k records that was half
 * the decode and a copy of every record): each was an ArtefactRecord when MajorDomo wrote it, the
 * parts hash to the head, and only the majordomo role writes this bucket. The head names the
 * record schema they were written under (RECORD_SCHEMA): records of any other (a field added or
 * changed in protocol) are no snapshot, and the full restore parses every record again.
 */
export const SNAPSHOT_FORMAT = 7;
const HEAD = 'head';

/**
 * The schemas of what a snapshot holds unparsed (JSON Schemas' hash): the ArtefactRecord this
 * MajorDomo writes and reads records under, and the RulesDeclared of the declarations it was
 * planned with (restore-state.ts validDeclarations).
 */
export const RECORD_SCHEMA = createHash('sha256')
  .update(JSON.stringify(z.toJSONSchema(ArtefactRecord, { io: 'input' })))
  .update(JSON.stringify(z.toJSONSchema(RulesDeclared, { io: 'input' })))
  .digest('hex')
  .slice(0, 16);

/** Where a bucket stood: its stream's creation time (a bucket made again restarts its revisions). */
export const BucketMark = z.object({
  created: z.string().min(1),
  revision: z.number().int().nonnegative(),
});
export type BucketMark = z.infer<typeof BucketMark>;

export const SnapshotHead = z.object({
  format: z.number().int(),
  id: z.string().uuid(),
  parts: z.number().int().positive().max(100_000),
  /** The first parts: the meta, gzipped JSON; the rest: the graph. */
  metaParts: z.number().int().positive(),
  graphBytes: z.number().int().positive(),
  bytes: z.number().int().positive(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  artefacts: BucketMark,
  traces: BucketMark,
  artefactCount: z.number().int().nonnegative(),
  /** RECORD_SCHEMA of the MajorDomo that wrote the records. */
  recordSchema: z.string().min(1),
  taken: z.string(),
});
export type SnapshotHead = z.infer<typeof SnapshotHead>;

/** A cyclic task's pass, as its trace recorded it (restorePass after a restart). */
export const PassMark = z.object({
  taskId: z.string().min(1),
  pass: z.number().int().positive(),
  round: z.string().min(1),
});
export type PassMark = z.infer<typeof PassMark>;

export const SnapshotMeta = z.object({
  passLimit: z.number().int().positive(),
  records: z.array(ArtefactRecord),
  passes: z.array(PassMark),
  /** Each chef's declaration as planned with (planText of the parsed value), by chef. */
  declarations: z.record(z.string(), z.string()),
  /** The stored goal answers (JSON of each parsed value), sorted. */
  goals: z.array(z.string()),
});
export type SnapshotMeta = z.infer<typeof SnapshotMeta>;

/** SnapshotMeta as stored: its records by column (snapshot-records.ts), graph fields left out. */
const StoredMetaSchema = SnapshotMeta.extend({ records: StoredRecords });
export type StoredMeta = z.infer<typeof StoredMetaSchema>;

export interface Snapshot {
  /** Where its parts were read: the local copy of the stored snapshot (snapshot-local.ts), or KV. */
  readonly readFrom: 'local copy' | 'KV';
  readonly head: SnapshotHead;
  /** Its records still as stored: expandRecords() with the graph makes them whole. */
  readonly meta: StoredMeta;
  /** depgraph's compact state (DependencyManager.fromBytes). */
  readonly graph: Uint8Array;
}

/** Why no snapshot could be used, for the log line. */
export type Loaded = { snapshot: Snapshot } | { why: string };

export class SnapshotStore {
  private constructor(
    readonly heads: TypedKv<typeof SnapshotHead>,
    readonly raw: TypedKv<typeof SnapshotHead>['kv'],
    readonly partBytes: number,
    readonly logger: Logger,
    readonly local?: LocalSnapshot,
  ) {}

  /**
   * The project's snapshot bucket; with `localDir` (MajorDomo's state dir), the local copy of the
   * stored snapshot kept there (snapshot-local.ts): a load reads it when it copies the head stored
   * now, and a save or a load from KV writes it.
   */
  static async open(bus: Bus, localDir?: string): Promise<SnapshotStore> {
    const heads = await bus.kv(buckets.snapshot(bus.project), SnapshotHead, { history: 1 });
    // Half the server's max payload, at most 1 MiB: room for headers, any server's limit.
    const max = bus.nc.info?.max_payload ?? 1024 * 1024;
    const local = localDir === undefined ? undefined : LocalSnapshot.in(localDir, bus.project);
    const partBytes = Math.min(1024 * 1024, Math.floor(max / 2));
    return new SnapshotStore(heads, heads.kv, partBytes, bus.logger, local);
  }

  /** The stored head, when there is one of this format. */
  async current(): Promise<SnapshotHead | undefined> {
    const head = (await this.heads.get(HEAD))?.value;
    return head?.format === SNAPSHOT_FORMAT ? head : undefined;
  }

  async load(): Promise<Loaded> {
    const head = await this.heads.get(HEAD);
    if (!head) return { why: 'no snapshot stored' };
    const h = head.value;
    if (h.format !== SNAPSHOT_FORMAT)
      return { why: `snapshot format ${h.format}, this MajorDomo reads ${SNAPSHOT_FORMAT}` };
    if (h.recordSchema !== RECORD_SCHEMA)
      return {
        why: `snapshot records of schema ${h.recordSchema}, this MajorDomo's is ${RECORD_SCHEMA}`,
      };
    const { read, from } = await this.#readParts(h);
    if ('why' in read) return read;
    const { graph } = read;
    let json: unknown;
    try {
      json = JSON.parse(read.metaText);
    } catch {
      return { why: 'snapshot meta is not JSON' };
    }
    const meta = StoredMetaSchema.safeParse(json);
    if (!meta.success) {
      const issue = meta.error.issues[0];
      return { why: `snapshot meta invalid at ${issue?.path.join('.')}: ${issue?.message}` };
    }
    // The records' values are not parsed again (see RECORD_SCHEMA): expandRecords() checks
    // their columns as it makes the records whole.
    return { snapshot: { readFrom: from, head: h, meta: meta.data, graph } };
  }

  /**
   * The parts of `head`: from the local copy when it is one of `head` and passes readParts'
   * checks, else from KV (written to the local copy as they come, kept if they pass).
   */
  async #readParts(head: SnapshotHead): Promise<{ read: ReadParts; from: Snapshot['readFrom'] }> {
    if (!this.local) return { read: await readParts(head, (key) => this.raw.get(key)), from: 'KV' };
    const copy = await this.local.open(head);
    let why: string;
    if ('why' in copy) why = copy.why;
    else {
      try {
        const read = await copy.read();
        if (!('why' in read)) return { read, from: 'local copy' };
        why = read.why;
      } finally {
        await copy.close();
      }
    }
    this.logger.info({ file: this.local.file, why }, 'local snapshot copy not used; reading KV');
    const writer = await this.local.writer(head).catch((err: Error) => {
      this.#notCopied(err);
      return undefined;
    });
    const read = await readParts(head, (key) => this.raw.get(key), writer?.add).catch(
      async (err: Error) => {
        await writer?.abandon();
        throw err;
      },
    );
    if ('why' in read) await writer?.abandon();
    else this.#keep(writer?.done());
    return { read, from: 'KV' };
  }

  /** A local copy's write, finished in the background (a failure is logged, the copy dropped). */
  #keep(written: Promise<void> | undefined): void {
    written?.catch((err: Error) => this.#notCopied(err));
  }

  #notCopied(err: Error): void {
    this.logger.warn({ err: err.message }, 'local snapshot copy not written');
  }

  /** Stores a new snapshot in place of the last. */
  async save(
    meta: StoredMeta,
    graph: Uint8Array,
    marks: { artefacts: BucketMark; traces: BucketMark },
  ): Promise<SnapshotHead> {
    const metaChunks = await zipJson(meta, this.partBytes);
    const chunks = [...metaChunks, ...cut(graph, this.partBytes)];
    const id = randomUUID();
    const before = await this.heads.get(HEAD);
    const hash = createHash('sha256');
    let bytes = 0;
    for (const [n, c] of chunks.entries()) {
      hash.update(c);
      bytes += c.length;
      await this.raw.put(`part.${n}`, c);
    }
    const parts = chunks.length;
    const head: SnapshotHead = {
      format: SNAPSHOT_FORMAT,
      id,
      parts,
      metaParts: metaChunks.length,
      graphBytes: graph.length,
      bytes,
      sha256: hash.digest('hex'),
      ...marks,
      artefactCount: meta.records.count,
      recordSchema: RECORD_SCHEMA,
      taken: new Date().toISOString(),
    };
    await this.heads.put(HEAD, head);
    // The local copy before saying it is stored: a restart right after (a kill -9) finds it.
    if (this.local) await this.#copy(head, chunks).catch((err: Error) => this.#notCopied(err));
    // Parts the previous, longer snapshot left: gone, and their markers with them.
    for (let n = parts; n < (before?.value.parts ?? 0); n++)
      await this.raw.purge(`part.${n}`).catch(() => undefined);
    return head;
  }

  /** The local copy of a snapshot just stored. */
  async #copy(head: SnapshotHead, chunks: Uint8Array[]): Promise<void> {
    const writer = await this.local?.writer(head);
    if (!writer) return;
    for (const c of chunks) writer.add(c);
    await writer.done();
  }
}

/**
 * The gzipped JSON of `meta` in parts of at most `size` bytes, zipped from its text in pieces of
 * a few tens of KB (bus jsonPieces) as zlib takes them (on libuv's thread pool: the event loop
 * goes on planning meanwhile): at 100k artefacts its text is ~30 MB, which as one string and its
 * Buffer lifted MajorDomo's memory by ~60 MB while ready (issue #13). The records are not changed
 * while it runs: ArtefactManager replaces a record, never changes one in place.
 */
async function zipJson(meta: StoredMeta, size: number): Promise<Uint8Array[]> {
  const zipped: Buffer[] = [];
  let held = 0;
  const parts: Uint8Array[] = [];
  const z = createGzip({ level: 1 });
  z.on('data', (b: Buffer) => {
    zipped.push(b);
    held += b.length;
    if (held >= size) {
      const all = Buffer.concat(zipped);
      zipped.length = 0;
      for (const part of cut(all, size)) {
        if (part.length === size) parts.push(part);
        else zipped.push(Buffer.from(part));
      }
      held = zipped.reduce((n, c) => n + c.length, 0);
    }
  });
  await pipeline(Readable.from(jsonPieces(meta), { objectMode: false }), z);
  if (held > 0 || parts.length === 0) parts.push(Buffer.concat(zipped));
  return parts;
}

/** `b` in pieces of at most `size` bytes (views, no copies); at least one. */
function cut(b: Uint8Array, size: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let at = 0; at < b.length; at += size) out.push(b.subarray(at, at + size));
  return out.length ? out : [b];
}
