import { randomBytes } from 'node:crypto';
import { CpError } from '@computepods/protocol';

/** How long an answer's parts are kept after they were last read. */
const KEEP_MS = 60_000;
/** Answers kept at once (each may be tens of MB at 100k artefacts): the oldest goes first. */
const MAX_KEPT = 4;

/** The parts asked for are no longer kept (read too late, or pushed out by newer answers). */
export class ReplyChunkGoneError extends CpError {
  constructor() {
    super(
      'CP_NOT_FOUND',
      `that answer's parts are no longer kept (each is kept ${KEEP_MS / 1000} s after its last read): ask again`,
    );
  }
}

/**
 * An answer's JSON text as its pieces, grouped into parts: part n is the pieces from ends[n - 1]
 * (0 for the first) to ends[n]. A part's text is joined when it is asked for, so an answer is held
 * as the pieces it was made of (a graph answer kept per graph version shares them), never as one
 * string nor as a second copy cut into parts.
 */
export class Parts {
  constructor(
    readonly pieces: readonly string[],
    readonly ends: readonly number[],
    /** The text's length in UTF-8 bytes. */
    readonly bytes: number,
  ) {}

  get length(): number {
    return this.ends.length;
  }

  text(n: number): string | undefined {
    const end = this.ends[n];
    if (end === undefined) return undefined;
    return this.pieces.slice(n ? this.ends[n - 1] : 0, end).join('');
  }

  /** The same text, cut the same way (the same pieces: identical strings compare at once). */
  sameAs(other: Parts): boolean {
    return (
      this.bytes === other.bytes &&
      this.ends.length === other.ends.length &&
      this.ends.every((e, i) => e === other.ends[i]) &&
      this.pieces.length === other.pieces.length &&
      this.pieces.every((p, i) => p === other.pieces[i])
    );
  }
}

/** Bytes of `s` as a JSON string's contents (escapes counted, not its quotes). */
const encodedBytes = (s: string) => Buffer.byteLength(JSON.stringify(s)) - 2;

/** `piece` cut (in halves, never inside a surrogate pair) until each cut fits `room` encoded. */
function* fitting(piece: string, room: number): Generator<[string, number]> {
  const cost = encodedBytes(piece);
  if (cost <= room || piece.length < 2) {
    yield [piece, cost];
    return;
  }
  let half = piece.length >> 1;
  const code = piece.charCodeAt(half);
  if (code >= 0xdc00 && code <= 0xdfff) half++;
  yield* fitting(piece.slice(0, half), room);
  yield* fitting(piece.slice(half), room);
}

/**
 * A part's most bytes, whatever the server's max payload (8 MB in deploy/): each part asked for is
 * joined, JSON-encoded and sent, and 4 are asked at once; at 8 MB each that was ~100 MB of
 * short-lived text and buffers per answer at 100k artefacts.
 */
const PART_BYTES = 512 * 1024;

/**
 * An answer's pieces (json-pieces.ts): whole when its text fits in `budgetBytes` (`bytes` says
 * so: it goes in one reply, as JSON), else in parts that each fit, JSON-encoded, in a reply
 * (and in PART_BYTES).
 */
export function partsOf(pieces: Iterable<string>, budgetBytes: number): Parts {
  const given: string[] = [];
  let bytes = 0;
  for (const piece of pieces) {
    if (!piece) continue;
    given.push(piece);
    bytes += Buffer.byteLength(piece);
  }
  if (bytes <= budgetBytes) return new Parts(given, given.length ? [given.length] : [], bytes);
  // The part's text goes in a JSON string: its quotes take two bytes.
  const room = Math.max(1, Math.min(budgetBytes, PART_BYTES) - 2);
  const kept: string[] = [];
  const ends: number[] = [];
  let used = 0;
  for (const piece of given) {
    for (const [cut, cost] of fitting(piece, room)) {
      if (used + cost > room && used > 0) {
        ends.push(kept.length);
        used = 0;
      }
      kept.push(cut);
      used += cost;
    }
  }
  if (used > 0) ends.push(kept.length);
  return new Parts(kept, ends, bytes);
}

/**
 * The answers of one process that were too big for one NATS message, as parts of their JSON text
 * (protocol's ChunkedResult, partsOf). An answer identical to one kept shares its parts: the
 * same graph asked for again and again is held once, not once per answer.
 */
export class ReplyChunks {
  /** Names this process's chunk subject: a standby or replica keeps its own answers. */
  readonly instance = randomBytes(8).toString('hex');
  readonly #kept = new Map<string, { parts: Parts; expires: number }>();

  /** Keeps an answer's parts: its id and how many. */
  keep(parts: Parts): { id: string; parts: number } {
    this.#expire();
    const same = [...this.#kept.values()].find((k) => k.parts.sameAs(parts));
    const id = randomBytes(12).toString('hex');
    this.#kept.set(id, { parts: same?.parts ?? parts, expires: performance.now() + KEEP_MS });
    while (this.#kept.size > MAX_KEPT) {
      const oldest = this.#kept.keys().next().value;
      if (oldest === undefined) break;
      this.#kept.delete(oldest);
    }
    return { id, parts: parts.length };
  }

  part(id: string, part: number): string {
    this.#expire();
    const kept = this.#kept.get(id);
    const text = kept?.parts.text(part);
    if (!kept || text === undefined) throw new ReplyChunkGoneError();
    kept.expires = performance.now() + KEEP_MS;
    return text;
  }

  #expire(): void {
    const now = performance.now();
    for (const [id, kept] of this.#kept) if (kept.expires < now) this.#kept.delete(id);
  }
}
