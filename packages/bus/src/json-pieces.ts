import { Readable } from 'node:stream';

/**
 * Array items serialised into one piece: small pieces die young (a scavenge frees them). At 500,
 * a piece of artefact records (~300 bytes each) was over V8's 128 KB regular object size: a
 * large object, each with pages of its own.
 */
const ITEMS_PER_PIECE = 128;

const plainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' &&
  v !== null &&
  !Array.isArray(v) &&
  typeof (v as { toJSON?: unknown }).toJSON !== 'function';

/**
 * JSON text made already, in pieces (a graph answer kept per graph version, say): jsonPieces and
 * jsonStream give its pieces as they are, as a value of its own or a plain object's property.
 * Anything else that serialises it (JSON.stringify) gets the same text through toJSON.
 */
export class JsonText {
  constructor(readonly pieces: readonly string[]) {
    if (!pieces.some((p) => p.length > 0)) throw new RangeError('JSON text cannot be empty');
  }

  toJSON(): unknown {
    return JSON.parse(this.pieces.join(''));
  }
}

/** An array's items ITEMS_PER_PIECE at a time, without its brackets; a hole or undefined is null. */
function* itemPieces(items: readonly unknown[]): Generator<string> {
  for (let at = 0; at < items.length; at += ITEMS_PER_PIECE) {
    const text = JSON.stringify(items.slice(at, at + ITEMS_PER_PIECE));
    yield `${at ? ',' : ''}${text.slice(1, -1)}`;
  }
}

/**
 * The JSON text of a value, byte-identical to JSON.stringify(value), in pieces of a few tens of
 * KB: an array, or the array properties of a plain object, ITEMS_PER_PIECE items at a time (any
 * other value in one piece; nothing for undefined, as JSON.stringify gives none). A 100k-artefact
 * graph is a 29 MB answer; as one string (and its copies) each query left tens of MB in V8's old
 * space, and a few queries in a row grew MajorDomo's heap past 1 GiB (issue #13).
 */
export function* jsonPieces(value: unknown): Generator<string> {
  if (value instanceof JsonText) {
    yield* value.pieces;
    return;
  }
  if (Array.isArray(value)) {
    yield '[';
    yield* itemPieces(value);
    yield ']';
    return;
  }
  if (!plainObject(value)) {
    const text = JSON.stringify(value);
    if (text !== undefined) yield text;
    return;
  }
  let first = true;
  yield '{';
  for (const [key, v] of Object.entries(value)) {
    // JSON.stringify leaves these properties out.
    if (v === undefined || typeof v === 'function' || typeof v === 'symbol') continue;
    yield `${first ? '' : ','}${JSON.stringify(key)}:`;
    first = false;
    if (v instanceof JsonText) yield* v.pieces;
    else if (Array.isArray(v)) {
      yield '[';
      yield* itemPieces(v);
      yield ']';
    } else yield JSON.stringify(v);
  }
  yield '}';
}

/** The pieces as a byte stream (an HTTP answer), produced as the client reads them. */
export function jsonStream(value: unknown): Readable {
  return Readable.from(jsonPieces(value), { objectMode: false });
}
