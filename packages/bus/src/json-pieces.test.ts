import { text } from 'node:stream/consumers';
import { describe, expect, it } from 'vitest';
import { JsonText, jsonPieces, jsonStream } from './json-pieces.js';
import { type Parts, partsOf, ReplyChunks } from './reply-chunks.js';

const texts = (parts: Parts) => Array.from({ length: parts.length }, (_, i) => parts.text(i) ?? '');

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
  it.each([0, 1, 127, 128, 129, 1_234])('is byte-identical to JSON.stringify (%i items)', (n) => {
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
    const parts = texts(partsOf(jsonPieces(value), 10_000));
    expect(parts.length).toBeGreaterThan(10);
    for (const p of parts) expect(Buffer.byteLength(JSON.stringify(p))).toBeLessThanOrEqual(10_000);
    expect(parts.join('')).toBe(JSON.stringify(value));
    expect(partsOf(jsonPieces(undefined), 10_000).bytes).toBe(0);
    expect(partsOf(jsonPieces({ a: 1 }), 10_000).bytes).toBe(7);
    // A piece bigger than a part is cut, never inside a surrogate pair.
    const big = JSON.stringify({ text: `${'x'.repeat(9_999)}😀${'"'.repeat(6_000)}` });
    const cut = texts(partsOf([big], 10_000));
    expect(cut.length).toBeGreaterThan(1);
    for (const p of cut) {
      expect(Buffer.byteLength(JSON.stringify(p))).toBeLessThanOrEqual(10_000);
      expect(p).not.toMatch(/^[\udc00-\udfff]|[\ud800-\udbff]$/);
    }
    expect(cut.join('')).toBe(big);
    expect(partsOf([big], 10_000).bytes).toBe(Buffer.byteLength(big));
  });

  it('cuts parts of at most 512 KiB, whatever the max payload; whole when it fits', () => {
    const value = sample(20_000);
    const bytes = Buffer.byteLength(JSON.stringify(value));
    expect(bytes).toBeGreaterThan(2 * 512 * 1024);
    const parts = partsOf(jsonPieces(value), 8 * 1024 * 1024);
    expect(parts.bytes).toBe(bytes);
    expect(parts.length).toBe(1); // fits whole in an 8 MB reply: sent as it is
    const cut = partsOf(jsonPieces(value), bytes - 1);
    expect(cut.length).toBeGreaterThan(2);
    for (const p of texts(cut))
      expect(Buffer.byteLength(JSON.stringify(p))).toBeLessThanOrEqual(512 * 1024);
    expect(texts(cut).join('')).toBe(JSON.stringify(value));
  });

  it('keeps the pieces it was given as they are, not copies of them', () => {
    // Parts bigger than the pieces (a piece bigger than a part is cut, above).
    const pieces = [...jsonPieces(sample(3_000))];
    const parts = partsOf(pieces, 200_000);
    expect(parts.length).toBeGreaterThan(1);
    expect(parts.pieces.every((p, i) => p === pieces[i])).toBe(true);
    expect(parts.pieces.length).toBe(pieces.length);
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
    expect(chunks.part(b.id, 3)).toBe(first.text(3));
    expect(chunks.part(c.id, c.parts - 1)).toBe(other.text(other.length - 1));
    expect(Array.from({ length: a.parts }, (_, i) => chunks.part(a.id, i)).join('')).toBe(
      JSON.stringify(sample(2_000)),
    );
  });
});

describe('JsonText', () => {
  it('is given as its pieces, alone or as a property, and serialises to the same text', async () => {
    const graph = sample(1_000);
    const kept = new JsonText([...jsonPieces(graph)]);
    const answer = { format: 'json', graph: kept };
    const whole = JSON.stringify({ format: 'json', graph });
    expect([...jsonPieces(answer)].join('')).toBe(whole);
    expect(JSON.stringify(answer)).toBe(whole);
    expect(await text(jsonStream(kept))).toBe(JSON.stringify(graph));
    // Its own pieces, not new strings: an answer kept in parts shares them.
    const parts = partsOf(jsonPieces(answer), 60_000);
    expect(parts.length).toBeGreaterThan(1);
    for (const piece of kept.pieces) if (piece.length > 100) expect(parts.pieces).toContain(piece);
    expect(() => new JsonText([''])).toThrow(RangeError);
  });
});
