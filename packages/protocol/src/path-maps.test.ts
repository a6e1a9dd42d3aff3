import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { OutputRecord } from './builds.js';
import { SHA256, Sha256 } from './files.js';
import { pathList, pathRecord } from './path-maps.js';
import { RelativePath } from './paths.js';

const sha = (i: number) => i.toString(16).padStart(64, '0');
/** Path pieces that normalise, refuse or pass as they are. */
const PIECES = ['a', 'b.c', '.', '..', '', 'é', 'x y', '\\', '\0', '/', '.hidden', 'a..b'];

/** A deterministic spread of paths (a small LCG): every kind of piece, joined 1-4 deep. */
function paths(n: number): string[] {
  let seed = 7;
  const next = (m: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % m;
  };
  return Array.from({ length: n }, () =>
    Array.from({ length: 1 + next(4) }, () => PIECES[next(PIECES.length)]).join('/'),
  );
}

/** What zod says of a value: the data, or the paths its issues name. */
function verdict(s: z.ZodType, v: unknown): unknown {
  const r = s.safeParse(v);
  return r.success ? { data: r.data } : { at: r.error.issues.map((i) => i.path.join('|')).sort() };
}

describe('pathRecord and pathList (one loop for a path-keyed record or a path list)', () => {
  const ps = paths(400);

  it('accept, normalise and refuse exactly as zod with RelativePath does', () => {
    const pairs: Array<[z.ZodType, z.ZodType, (p: string, i: number) => unknown]> = [
      [pathRecord(SHA256), z.record(RelativePath, Sha256), (p, i) => ({ [p]: sha(i) })],
      [
        pathRecord(OutputRecord),
        z.record(RelativePath, OutputRecord),
        (p) => ({ [p]: { sha256: sha(1), size: 1 } }),
      ],
      [
        pathRecord(z.string()),
        z.record(RelativePath, z.string()),
        (p) => ({ [p]: 'pod', ok: 'x' }),
      ],
      [pathList(), z.array(RelativePath), (p) => ['ok/a', p]],
    ];
    for (const [ours, zods, make] of pairs)
      for (const [i, p] of ps.entries())
        expect(verdict(ours, make(p, i)), p).toEqual(verdict(zods, make(p, i)));
  });

  it('refuses bad values, bad shapes and bounds at the paths zod names', () => {
    const cases: Array<[z.ZodType, z.ZodType, unknown]> = [
      [pathRecord(SHA256), z.record(RelativePath, Sha256), { a: 'not a hash', b: 3, c: sha(1) }],
      [pathRecord(SHA256), z.record(RelativePath, Sha256), ['a']],
      [pathRecord(SHA256), z.record(RelativePath, Sha256), null],
      [
        pathRecord(OutputRecord),
        z.record(RelativePath, OutputRecord),
        { a: { sha256: sha(1), size: -1 } },
      ],
      [pathList({ min: 1 }), z.array(RelativePath).min(1), []],
      [pathList({ max: 1 }), z.array(RelativePath).max(1), ['a', 'b']],
      [pathList(), z.array(RelativePath), 'a'],
      [pathList(), z.array(RelativePath), ['a', 1]],
    ];
    for (const [ours, zods, v] of cases) expect(verdict(ours, v)).toEqual(verdict(zods, v));
  });

  it('gives back the record it was given when every key is normal, a new one otherwise', () => {
    const normal = { 'a/b.c': sha(1), 'd/e': sha(2) };
    expect(pathRecord(SHA256).parse(normal)).toBe(normal);
    const other = { 'a/./b.c': sha(1) };
    const out = pathRecord(SHA256).parse(other);
    expect(out).toEqual({ 'a/b.c': sha(1) });
    expect(other).toEqual({ 'a/./b.c': sha(1) });
  });

  it('keeps a "__proto__" key as a key, never as the prototype', () => {
    // A normalised key: the record is made anew, the "__proto__" key put into it.
    const rec = `{"sha256": "${sha(1)}", "size": 1}`;
    const parsed = JSON.parse(`{"__proto__": ${rec}, "a/./b": ${rec}}`);
    const out = pathRecord(OutputRecord).parse(parsed) as Record<string, unknown>;
    expect(Object.keys(out)).toEqual(['__proto__', 'a/b']);
    expect(Object.getPrototypeOf(out)).toBe(Object.prototype);
    expect((out as { size?: unknown }).size).toBeUndefined();
  });
});
