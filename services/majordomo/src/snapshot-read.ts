import { createHash } from 'node:crypto';
import { StringDecoder } from 'node:string_decoder';
import { promisify } from 'node:util';
import { createGunzip, gunzip } from 'node:zlib';
import type { SnapshotHead } from './snapshot-store.js';

/** Parts asked for at once: the round trips overlap, and only these are held (issue #13). */
const PARTS_AT_ONCE = 16;

/** A stored part as KV gives it (a deleted or purged key is no PUT). */
export interface StoredPart {
  readonly operation: string;
  readonly value: Uint8Array;
}

/** A snapshot's parts, read: the meta's gzipped text unzipped, the graph in one buffer. */
export type ReadParts = { metaText: string; graph: Uint8Array } | { why: string };

/**
 * Reads the parts `head` names, PARTS_AT_ONCE at a time, each taken in order as it comes: hashed,
 * then its bytes unzipped (the meta's) or copied into the graph's one buffer (depgraph keeps
 * views into it), and dropped. Before, every part was held until all had come, then the graph
 * copied and the meta unzipped: at 100k artefacts ~45 MB of parts held beside what was made of
 * them. Checks as a whole read did: every part there, the length and sha256 of all, the graph's
 * length, then the meta's gzip (in that order of blame: parts that do not hash to the head are
 * not unzipped for a message). `copy`, when given, is handed each part in order as it comes (the
 * local copy of the snapshot, snapshot-local.ts); the caller keeps it only if the read succeeds.
 */
export async function readParts(
  head: SnapshotHead,
  get: (key: string) => Promise<StoredPart | null | undefined>,
  copy?: (part: Uint8Array) => void,
): Promise<ReadParts> {
  const asked = new Map<number, Promise<StoredPart | null | undefined>>();
  const ask = (n: number) => {
    if (n >= head.parts || asked.has(n)) return;
    const p = get(`part.${n}`);
    p.catch(() => undefined); // awaited in turn, unless an earlier part stops the read
    asked.set(n, p);
  };
  for (let n = 0; n < PARTS_AT_ONCE; n++) ask(n);
  const hash = createHash('sha256');
  const meta = new MetaText();
  const graph = new Uint8Array(head.graphBytes);
  let bytes = 0;
  let at = 0;
  try {
    for (let n = 0; n < head.parts; n++) {
      const e = await asked.get(n);
      asked.delete(n);
      ask(n + PARTS_AT_ONCE);
      if (e?.operation !== 'PUT') return { why: `snapshot part ${n} of ${head.parts} missing` };
      const c = e.value;
      hash.update(c);
      copy?.(c);
      bytes += c.length;
      if (n < head.metaParts) meta.write(c);
      else {
        if (at + c.length <= graph.length) graph.set(c, at);
        at += c.length;
      }
    }
  } finally {
    meta.end();
  }
  if (bytes !== head.bytes || hash.digest('hex') !== head.sha256)
    return { why: 'snapshot parts do not match their head (length or sha256)' };
  if (at !== head.graphBytes) return { why: 'snapshot graph parts do not add up to its length' };
  try {
    return { metaText: await meta.text, graph };
  } catch (err) {
    return { why: `snapshot meta does not unzip: ${(err as Error).message}` };
  }
}

const unzip = promisify(gunzip);

/**
 * A snapshot's parts held as one run of bytes (the local copy's file, snapshot-local.ts), its
 * first `metaBytes` the meta's: the checks of readParts in the same order of blame, but the
 * meta unzipped in one go on libuv's thread pool while the event loop hashes the bytes, not piece
 * by piece with its text decoded a piece at a time. (webcrypto's digest is no help: Node 20
 * copies its input on the event loop first, which took as long as hashing it there.) The graph
 * is a view into `data`, not a copy: the meta's zipped bytes before it stay held with it.
 */
export async function readWhole(
  head: SnapshotHead,
  data: Uint8Array,
  metaBytes: number,
): Promise<ReadParts> {
  const unzipped = unzip(data.subarray(0, metaBytes));
  unzipped.catch(() => undefined); // read only once every part is checked
  const sha256 = createHash('sha256').update(data).digest('hex');
  if (data.length !== head.bytes || sha256 !== head.sha256)
    return { why: 'snapshot parts do not match their head (length or sha256)' };
  if (data.length - metaBytes !== head.graphBytes)
    return { why: 'snapshot graph parts do not add up to its length' };
  try {
    return { metaText: (await unzipped).toString('utf8'), graph: data.subarray(metaBytes) };
  } catch (err) {
    return { why: `snapshot meta does not unzip: ${(err as Error).message}` };
  }
}

/**
 * Gzipped text unzipped as it is fed in: no copy of the parts joined, nor of the whole output
 * joined (the text is built from its pieces; JSON.parse reads it once).
 */
class MetaText {
  readonly #z = createGunzip({ chunkSize: 1024 * 1024 });
  readonly #decoder = new StringDecoder('utf8');
  #text = '';
  readonly text: Promise<string>;

  constructor() {
    this.#z.on('data', (b: Buffer) => {
      this.#text += this.#decoder.write(b);
    });
    this.text = new Promise<string>((resolve, reject) => {
      this.#z.on('end', () => resolve(this.#text + this.#decoder.end()));
      this.#z.on('error', reject);
    });
    this.text.catch(() => undefined); // read only once every part is checked
  }

  write(c: Uint8Array): void {
    this.#z.write(c);
  }

  end(): void {
    this.#z.end();
  }
}
