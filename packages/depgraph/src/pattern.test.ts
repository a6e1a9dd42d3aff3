import { describe, expect, it } from 'vitest';
import { compilePattern, fillPattern, matchPattern, stemKey } from './pattern.js';
import { compileRule } from './rule.js';

describe('patterns', () => {
  it('{stem} spans "/" and the pattern is anchored at both ends', () => {
    const tex = compilePattern('{stem}.tex');
    expect(matchPattern(tex, 'paper/main.tex')).toEqual({ stem: 'paper/main' });
    expect(matchPattern(tex, 'main.texx')).toBeUndefined();
    const src = compilePattern('src/{stem}.txt');
    expect(matchPattern(src, 'src/a.txt')).toEqual({ stem: 'a' });
    expect(matchPattern(src, 'src/x/a.txt')).toEqual({ stem: 'x/a' });
    expect(matchPattern(src, 'lib/src/a.txt')).toBeUndefined();
    expect(matchPattern(src, 'a.txt')).toBeUndefined();
  });

  it('other placeholders stay within one segment; a repeated one must bind the same text', () => {
    const p = compilePattern('{dir}/{stem}.c');
    expect(matchPattern(p, 'lib/x/y.c')).toEqual({ dir: 'lib', stem: 'x/y' });
    const twice = compilePattern('{name}/{name}.c');
    expect(matchPattern(twice, 'a/a.c')).toEqual({ name: 'a' });
    expect(matchPattern(twice, 'a/b.c')).toBeUndefined();
  });

  it('escapes regex characters in literal text', () => {
    const p = compilePattern('out/{stem}.(1)+.txt');
    expect(matchPattern(p, 'out/a.(1)+.txt')).toEqual({ stem: 'a' });
    expect(matchPattern(p, 'out/a.(1)).txt')).toBeUndefined();
  });

  it('fills outputs and names tasks readably', () => {
    const p = compilePattern('{stem}.pdf');
    expect(fillPattern(p, { stem: 'paper/main' })).toBe('paper/main.pdf');
    expect(stemKey(['stem'], { stem: 'paper/main' })).toBe('paper/main');
    expect(stemKey([], {})).toBe('');
    expect(stemKey(['dir', 'stem'], { dir: 'lib', stem: 'a' })).toBe('dir=lib,stem=a');
  });

  it('indexes by the extension of the literal tail', () => {
    expect(compilePattern('{stem}.tar.gz').ext).toBe('gz');
    expect(compilePattern('src/{stem}').ext).toBeUndefined();
    expect(compilePattern('{stem}.d/x').ext).toBe('');
  });
});

describe('rule validation', () => {
  const bad = (spec: Parameters<typeof compileRule>[0]) => {
    try {
      compileRule(spec);
    } catch (e) {
      return (e as { code: string }).code;
    }
    return 'accepted';
  };
  it('rejects bad ids, empty lists, escaping patterns and unbound placeholders', () => {
    expect(bad({ id: 'a b', inputs: ['x'], outputs: ['y'] })).toBe('DEPGRAPH_RULE_INVALID');
    expect(bad({ id: 'r', inputs: [], outputs: ['y'] })).toBe('DEPGRAPH_RULE_INVALID');
    expect(bad({ id: 'r', inputs: ['x'], outputs: [] })).toBe('DEPGRAPH_RULE_INVALID');
    expect(bad({ id: 'r', inputs: ['../x'], outputs: ['y'] })).toBe('DEPGRAPH_RULE_INVALID');
    expect(bad({ id: 'r', inputs: ['/x'], outputs: ['y'] })).toBe('DEPGRAPH_RULE_INVALID');
    expect(bad({ id: 'r', inputs: ['{stem}.c'], outputs: ['{other}.o'] })).toBe(
      'DEPGRAPH_RULE_INVALID',
    );
    expect(bad({ id: 'r', inputs: ['{stem}.c', '{x}.h'], outputs: ['{stem}.o'] })).toBe(
      'DEPGRAPH_RULE_INVALID',
    );
    expect(bad({ id: 'r', inputs: ['x'], outputs: ['y'], passLimit: 0 })).toBe(
      'DEPGRAPH_RULE_INVALID',
    );
    expect(bad({ id: 'r-1_x', inputs: ['{stem}.c', 'common.h'], outputs: ['{stem}.o'] })).toBe(
      'accepted',
    );
  });
});
