import { text } from 'node:stream/consumers';
import { describe, expect, it } from 'vitest';
import { jsonPieces, jsonStream } from './json-pieces.js';
import { partsOf, ReplyChunks } from './reply-chunks.js';

/** A graph-shaped answer with what JSON.stringify treats specially. */
function sample(n: number): Record<string, unknown> {
  const items = Array.from({ length: n }, (_, i) => ({
    path: `src/ü-${i}"\\\n\u2028.c`,
    hash: i % 3 ? `h${i}` : null,
    dropped: undefined,
    inputs: i % 2 ? [] : [`a${i}`, 'b'],
    n: i / 7,
  }));
  return {
    rules: [{ id: 'cc', inputs: ['src/%.c'] }],
    skipped: undefined,
    artefacts: items,
    empty: [],
    holes: [1, undefined, 3],
    tasks: items.slice(0, 3),
    count: n,
    nested: { a: [1, 2], b: 'x' },
  };
}

describe('jsonPieces', () => {
  it.each([0, 1, 499, 500, 501, 1_234])('is byte-identical to JSON.stringify (%i items)', (n) => {
    const value = sample(n);
    expect([...jsonPieces(value)].join('')).toBe(JSON.stringify(value));
  });

  it('keeps every piece small, whatever the answer', () => {
    const pieces = [...jsonPieces(sample(5_000))];
    expect(pieces.length).toBeGreaterThan(10);
    for (const piece of pieces) expect(piece.length).toBeLessThan(100_000);
  });

  it('streams the same bytes, UTF-8', async () => {
    const value = sample(1_100);
    expect(await text(jsonStream(value))).toBe(JSON.stringify(value));
  });
});

describe('partsOf and ReplyChunks', () => {
  it('cuts the pieces into parts that fit JSON-encoded, and join to the text', () => {
    const value = sample(3_000);
    const parts = partsOf(jsonPieces(value), 10_000);
    expect(parts.length).toBeGreaterThan(10);
    for (const p of parts) expect(Buffer.byteLength(JSON.stringify(p))).toBeLessThanOrEqual(10_000);
    expect(parts.join('')).toBe(JSON.stringify(value));
    expect(partsOf(jsonPieces(undefined), 10_000)).toEqual([]);
    expect(partsOf(jsonPieces({ a: 1 }), 10_000)).toEqual(['{"a":1}']);
    // Whole when it fits, though longer than half the budget (a chunk's own reply is such).
    const fits = { text: 'x'.repeat(9_000) };
    expect(partsOf(jsonPieces(fits), 10_000)).toEqual([JSON.stringify(fits)]);
    expect(partsOf(jsonPieces({ text: 'x'.repeat(10_000) }), 10_000).length).toBe(3);
  });

  it('reads back an answer identical to a kept one (its parts shared) and a different one', () => {
    const chunks = new ReplyChunks();
    const first = partsOf(jsonPieces(sample(2_000)), 10_000);
    const again = partsOf(jsonPieces(sample(2_000)), 10_000);
    const other = partsOf(jsonPieces(sample(2_001)), 10_000);
    const a = chunks.keep(first);
    const b = chunks.keep(again);
    const c = chunks.keep(other);
    expect(b.id).not.toBe(a.id);
    expect(chunks.part(b.id, 3)).toBe(first[3]);
    expect(chunks.part(c.id, c.parts - 1)).toBe(other[other.length - 1]);
    expect(Array.from({ length: a.parts }, (_, i) => chunks.part(a.id, i)).join('')).toBe(
      JSON.stringify(sample(2_000)),
    );
  });
});
