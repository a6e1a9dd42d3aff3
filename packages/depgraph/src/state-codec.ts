import { endianness } from 'node:os';
import { crc32 } from 'node:zlib';
import { StateCorruptError } from './errors.js';
import { type Snapshot, type SnapshotExtras, TASK_HEAD } from './snapshot.js';
import { TRACE_HEAD } from './trace-table.js';
import type { ReadOptions, RuleSpec } from './types.js';

/**
 * The compact persisted form of a graph (a Snapshot), read without building a JSON tree: every
 * string (path, hash, task id) once in one table, everything else as 32-bit numbers.
 *
 *   header  "CPDGSTAT", u32 version, u32 body bytes, u32 crc32 of the body
 *   body    u32 counts: strings, text bytes, paths, trace words, traces, task words, tasks,
 *                       consumer words, rules bytes, extras bytes
 *           u32 length of each string (UTF-16 code units), then the strings as UTF-8
 *           u32 hash per path, the trace records, the task records, the consumer lists (see
 *           snapshot.ts)
 *           rules as JSON, extras as JSON (small; a rule's `meta` is any JSON)
 *   each blob padded to 4 bytes, little-endian.
 *
 * Decoding checks the length and checksum, then every count and index, so a truncated or
 * corrupt file gives a StateCorruptError naming what is wrong, never a different graph. A caller
 * that checked the bytes against a digest of its own may skip the checksum (ReadOptions). Change
 * VERSION whenever the layout or the way tasks are derived from rules changes.
 */
const MAGIC = Buffer.from('CPDGSTAT', 'latin1');
const VERSION = 1;
const HEADER_BYTES = 20;
const COUNTS = 10;
const LE = endianness() === 'LE';

/** True when `bytes` start like an encoded state (anything else may be the older JSON form). */
export function isEncodedState(bytes: Uint8Array): boolean {
  return bytes.length >= MAGIC.length && MAGIC.equals(bytes.subarray(0, MAGIC.length));
}

export function encodeSnapshot(snap: Snapshot): Uint8Array {
  let textBytes = 0;
  for (const piece of stringPieces(snap.strings)) textBytes += Buffer.byteLength(piece);
  const rules = Buffer.from(JSON.stringify(snap.rules), 'utf8');
  const extras = Buffer.from(JSON.stringify(snap.extras), 'utf8');
  const counts = [
    snap.strings.length,
    textBytes,
    snap.paths,
    snap.traces.length,
    snap.traceCount,
    snap.tasks.length,
    snap.taskCount,
    snap.consumers.length,
    rules.length,
    extras.length,
  ];
  const lengths = Uint32Array.from(snap.strings, (s) => s.length);
  const sections: Array<Uint32Array | Buffer | { text: readonly string[] }> = [
    Uint32Array.from(counts),
    lengths,
    { text: snap.strings },
    snap.hashes,
    snap.traces,
    snap.tasks,
    snap.consumers,
    rules,
    extras,
  ];
  const size = (b: (typeof sections)[number]) => ('text' in b ? textBytes : b.byteLength);
  const bodyBytes = sections.reduce((n, b) => n + pad(size(b)), 0);
  const out = Buffer.alloc(HEADER_BYTES + bodyBytes);
  MAGIC.copy(out, 0);
  out.writeUInt32LE(VERSION, 8);
  out.writeUInt32LE(bodyBytes, 12);
  let at = HEADER_BYTES;
  for (const section of sections) {
    if ('text' in section) {
      // The strings as UTF-8, a piece at a time: never their whole text as one string.
      let to = at;
      for (const piece of stringPieces(section.text)) to += out.write(piece, to, 'utf8');
    } else if (section instanceof Uint32Array) writeWords(out, at, section);
    else section.copy(out, at);
    at += pad(size(section));
  }
  out.writeUInt32LE(crc32(out.subarray(HEADER_BYTES)), 16);
  return out;
}

/** The strings joined a few thousand at a time (the table's text, a piece at a time). */
function* stringPieces(strings: readonly string[]): Generator<string> {
  for (let i = 0; i < strings.length; i += 4096) yield strings.slice(i, i + 4096).join('');
}

/** `words` as u32 little-endian into `out` at `at`. */
function writeWords(out: Buffer, at: number, words: Uint32Array): void {
  if (LE) out.set(new Uint8Array(words.buffer, words.byteOffset, words.byteLength), at);
  else for (let i = 0; i < words.length; i++) out.writeUInt32LE(words[i] ?? 0, at + 4 * i);
}

export function decodeSnapshot(bytes: Uint8Array, read: ReadOptions = {}): Snapshot {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (!isEncodedState(buf))
    throw new StateCorruptError('header', 'it does not start with CPDGSTAT');
  if (buf.length < HEADER_BYTES) throw new StateCorruptError('header', 'the file is truncated');
  const version = buf.readUInt32LE(8);
  if (version !== VERSION) {
    throw new StateCorruptError(
      'version',
      `version ${version}, this depgraph reads ${VERSION}; load the JSON export (exportState) instead`,
    );
  }
  const bodyBytes = buf.readUInt32LE(12);
  if (buf.length !== HEADER_BYTES + bodyBytes) {
    const why = buf.length < HEADER_BYTES + bodyBytes ? 'truncated' : 'has trailing bytes';
    throw new StateCorruptError(
      'length',
      `the file ${why}: ${buf.length} bytes, the header says ${HEADER_BYTES + bodyBytes}`,
    );
  }
  if (!read.verified && crc32(buf.subarray(HEADER_BYTES)) !== buf.readUInt32LE(16)) {
    throw new StateCorruptError('checksum', 'the crc32 of the body does not match its header');
  }
  const r = new Reader(buf, HEADER_BYTES);
  const counts = r.words(COUNTS, 'counts');
  const [nStrings = 0, textBytes = 0, paths = 0, traceWords = 0, traceCount = 0] = counts;
  const [, , , , , taskWords = 0, taskCount = 0, consumerWords = 0] = counts;
  const [rulesBytes = 0, extrasBytes = 0] = counts.subarray(8);
  const lengths = r.words(nStrings, 'string lengths');
  const text = r.text(textBytes, 'strings');
  const strings = splitText(text, lengths);
  if (paths > nStrings) throw new StateCorruptError('counts', 'more paths than strings');
  const hashes = r.words(paths, 'hashes');
  checkBelow(hashes, nStrings + 1, 'hashes');
  const traces = r.words(traceWords, 'traces');
  // Index arithmetic only (no subarray per record): these walks see every word of the file.
  checkRecords(traces, traceCount, 'traces', (at) => {
    if (at + TRACE_HEAD > traces.length || (traces[at] ?? nStrings) >= nStrings) return -1;
    const pairs = (traces[at + 1] ?? 0) + (traces[at + 2] ?? 0);
    const end = at + TRACE_HEAD + 2 * pairs + Math.max((traces[at + 3] ?? 0) - 1, 0);
    if (end > traces.length) return -1;
    let i = at + TRACE_HEAD;
    for (const stop = i + 2 * pairs; i < stop; i += 2) {
      // A path, then a hash: a non-empty string (its length read from the lengths' words, not
      // the string: one load from an array of numbers per pair, not a string's header each).
      if ((traces[i] ?? paths) >= paths || !((lengths[traces[i + 1] ?? nStrings] ?? 0) > 0))
        return -1;
    }
    for (; i < end; i++) if ((traces[i] ?? paths) >= paths) return -1;
    return end;
  });
  const tasks = r.words(taskWords, 'tasks');
  checkRecords(tasks, taskCount, 'tasks', (at) => {
    if (at + TASK_HEAD > tasks.length || (tasks[at + 2] ?? nStrings) >= nStrings) return -1;
    const ids = (tasks[at + 4] ?? 0) + (tasks[at + 5] ?? 0) + (tasks[at + 6] ?? 0);
    const end = at + TASK_HEAD + ids;
    if (end > tasks.length) return -1;
    for (let i = at + TASK_HEAD; i < end; i++) if ((tasks[i] ?? paths) >= paths) return -1;
    return end;
  });
  const consumers = r.words(consumerWords, 'consumers');
  const rules = r.json(rulesBytes, 'rules');
  if (!Array.isArray(rules) || !rules.every(isObject)) {
    throw new StateCorruptError('rules', 'not an array of rule objects');
  }
  const extras = r.json(extrasBytes, 'extras');
  if (!isExtras(extras)) throw new StateCorruptError('extras', 'not the expected object');
  r.end();
  return {
    strings,
    paths,
    hashes,
    rules: rules as unknown as RuleSpec[],
    traces,
    traceCount,
    tasks,
    taskCount,
    consumers,
    extras,
  };
}

/** The strings of the table, cut from their concatenation by their lengths. */
function splitText(text: string, lengths: Uint32Array): string[] {
  const strings = new Array<string>(lengths.length);
  let start = 0;
  for (let i = 0; i < lengths.length; i++) {
    const end = start + (lengths[i] ?? 0);
    strings[i] = text.substring(start, end);
    start = end;
  }
  if (start !== text.length) {
    throw new StateCorruptError('strings', 'the string lengths do not add up to the text');
  }
  return strings;
}

/** Sequential reads over the body, each checked against its end. */
class Reader {
  constructor(
    private readonly buf: Buffer,
    private at: number,
  ) {}

  words(n: number, what: string): Uint32Array {
    const bytes = this.take(4 * n, what);
    const offset = this.buf.byteOffset + bytes;
    if (LE && offset % 4 === 0) return new Uint32Array(this.buf.buffer, offset, n);
    const out = new Uint32Array(n);
    for (let i = 0; i < n; i++) out[i] = this.buf.readUInt32LE(bytes + 4 * i);
    return out;
  }

  text(n: number, what: string): string {
    const start = this.take(pad(n), what);
    return this.buf.toString('utf8', start, start + n);
  }

  json(n: number, what: string): unknown {
    try {
      return JSON.parse(this.text(n, what));
    } catch (e) {
      if (e instanceof StateCorruptError) throw e;
      throw new StateCorruptError(what, `not JSON (${(e as Error).message})`);
    }
  }

  end(): void {
    if (this.at !== this.buf.length) {
      throw new StateCorruptError('length', 'bytes left over after the last section');
    }
  }

  private take(bytes: number, what: string): number {
    const start = this.at;
    if (start + bytes > this.buf.length) {
      throw new StateCorruptError(what, 'the section runs past the end of the file');
    }
    this.at = start + bytes;
    return start;
  }
}

function checkBelow(list: Uint32Array, limit: number, what: string): void {
  for (let i = 0; i < list.length; i++) {
    if ((list[i] ?? limit) >= limit) {
      throw new StateCorruptError(what, `entry ${i} is ${list[i]}, out of range (< ${limit})`);
    }
  }
}

/** Walks `count` records; `next` checks one and returns where the next starts, or -1. */
function checkRecords(
  list: Uint32Array,
  count: number,
  what: string,
  next: (at: number) => number,
): void {
  let at = 0;
  let seen = 0;
  while (at < list.length) {
    const end = next(at);
    if (end < 0) {
      throw new StateCorruptError(what, `record ${seen} is cut short, out of range or hashless`);
    }
    at = end;
    seen++;
  }
  if (seen !== count) throw new StateCorruptError(what, `${seen} records, the counts say ${count}`);
}

const pad = (n: number) => (n + 3) & ~3;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isStringRecord(v: unknown): v is Record<string, string> {
  return isObject(v) && Object.values(v).every((h) => typeof h === 'string');
}

function isExtras(v: unknown): v is SnapshotExtras {
  return (
    isObject(v) &&
    Number.isInteger(v.maxDepth) &&
    isObject(v.projections) &&
    Object.values(v.projections).every(isStringRecord) &&
    Array.isArray(v.tooDeep) &&
    v.tooDeep.every((id) => typeof id === 'string') &&
    Array.isArray(v.shadowed) &&
    v.shadowed.every(
      (e) =>
        Array.isArray(e) &&
        e.length === 3 &&
        typeof e[0] === 'string' &&
        typeof e[1] === 'string' &&
        isStringRecord(e[2]),
    )
  );
}
