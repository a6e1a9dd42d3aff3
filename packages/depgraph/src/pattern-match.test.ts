import { defined } from '@computepods/testkit';
import { describe, expect, it } from 'vitest';
import { compilePattern, matchPattern } from './pattern.js';

/** The regex matchPattern used to be: the oracle for its bindings on small inputs. */
function byRegex(source: string, path: string): Record<string, string> | undefined {
  const names: string[] = [];
  let re = '^';
  let last = 0;
  const esc = (t: string) => t.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  for (const m of source.matchAll(/\{([A-Za-z_][A-Za-z0-9_]*)\}/g)) {
    re += esc(source.slice(last, m.index));
    const name = defined(m[1], 'm[1]');
    if (names.includes(name)) re += `\\${names.indexOf(name) + 1}`;
    else {
      names.push(name);
      re += name === 'stem' ? '(.+)' : '([^/]+)';
    }
    last = m.index + m[0].length;
  }
  const m = new RegExp(`${re}${esc(source.slice(last))}$`).exec(path);
  if (!m) return undefined;
  return Object.fromEntries(names.map((n, i) => [n, defined(m[i + 1], 'm[i + 1]')]));
}

/** A small deterministic generator (no flaky seeds). */
function lcg(seed: number) {
  let s = seed;
  return (n: number) => {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    return s % n;
  };
}

describe('pattern matching without backtracking', () => {
  it('gives the bindings the regex gave, on thousands of small patterns and paths', () => {
    const rnd = lcg(7);
    const pieces = ['{stem}', '{a}', '{b}', '{a}', 'x', '.', '/', 'xy', '.t'];
    const chars = 'xy./';
    for (let i = 0; i < 20_000; i++) {
      let source = '';
      for (let j = 1 + rnd(4); j > 0; j--) source += pieces[rnd(pieces.length)];
      if (!source.includes('{')) source += '{a}';
      let path = '';
      for (let j = rnd(9); j > 0; j--) path += chars[rnd(chars.length)];
      expect(matchPattern(compilePattern(source), path), `${source} on ${path}`).toEqual(
        byRegex(source, path),
      );
    }
  });

  it('fails at once on adjacent placeholders against a long segment (stalled MajorDomo 13-43 s)', () => {
    const p = compilePattern('{a}{b}{c}{d}{e}{f}.txt');
    expect(matchPattern(p, `${'a'.repeat(140)}/x.txt`)).toBeUndefined();
    expect(matchPattern(p, `${'a'.repeat(140)}.tx`)).toBeUndefined();
    expect(
      matchPattern(compilePattern('{a}{b}{c}{d}{e}{f}b{g}.txt'), `${'a'.repeat(140)}.txt`),
    ).toBeUndefined();
    expect(matchPattern(p, 'abcdefg.txt')).toEqual({
      a: 'ab',
      b: 'c',
      c: 'd',
      d: 'e',
      e: 'f',
      f: 'g',
    });
  });

  it('keeps a repeated placeholder bound to the same text, within a budget', () => {
    expect(matchPattern(compilePattern('{x}{x}.c'), 'abab.c')).toEqual({ x: 'ab' });
    expect(matchPattern(compilePattern('{x}/{x}.c'), 'a/b.c')).toBeUndefined();
    // Hostile: many splits, none with equal halves: no match, and it returns.
    const hostile = compilePattern('{a}{b}{c}{d}{e}{a}.txt');
    expect(matchPattern(hostile, `${'a'.repeat(140)}b.txt`)).toBeUndefined();
  });
});
