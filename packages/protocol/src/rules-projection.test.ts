import { describe, expect, it } from 'vitest';
import { Rule } from './rules.js';

const base = { id: 'bibtex', inputs: ['{stem}.aux'], outputs: ['{stem}.bbl'], command: 'bibtex' };
const issues = (projections: unknown) => {
  const r = Rule.safeParse({ ...base, projections });
  return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
};

describe('rule input projections', () => {
  it('accepts a line filter or an argv command, with bounded defaults', () => {
    const r = Rule.parse({
      ...base,
      projections: [{ input: '{stem}.aux', lines: '^\\\\citation' }],
    });
    expect(r.projections).toEqual([
      { input: '{stem}.aux', lines: '^\\\\citation', timeoutMs: 5000, maxOutputBytes: 1 << 20 },
    ]);
    expect(Rule.parse(base).projections).toEqual([]);
    expect(issues([{ input: '{stem}.aux', command: ['sort', '-u'], timeoutMs: 100 }])).toEqual([]);
  });

  it('refuses bad projections with an error naming the field', () => {
    expect(issues([{ input: '{stem}.aux', lines: '(' }])).toEqual([
      'projections.0.lines: not a valid regular expression',
    ]);
    expect(issues([{ input: '{stem}.aux', command: 'sort -u' }])).toEqual([
      expect.stringMatching(/^projections\.0\.command: an argv array/),
    ]);
    expect(issues([{ input: '{stem}.aux', command: [] }])).toEqual([
      expect.stringMatching(/^projections\.0\.command: an argv array/),
    ]);
    expect(issues([{ input: '{stem}.aux' }])).toEqual([
      expect.stringMatching(/^projections\.0\.lines: give exactly one of lines/),
    ]);
    expect(issues([{ input: '{stem}.aux', lines: 'a', command: ['sort'] }])).toEqual([
      expect.stringMatching(/^projections\.0\.command: give exactly one of lines/),
    ]);
    expect(issues([{ input: '{stem}.bbl', lines: 'a' }])).toEqual([
      'projections.0.input: "{stem}.bbl" is not one of the rule\'s inputs or optional inputs',
    ]);
    expect(issues([{ input: '{stem}.aux', command: ['sort'], timeoutMs: 600_000 }])).toEqual([
      expect.stringMatching(/^projections\.0\.timeoutMs: /),
    ]);
    expect(issues([{ input: '{stem}.aux', command: ['cat'], maxOutputBytes: 1e9 }])).toEqual([
      expect.stringMatching(/^projections\.0\.maxOutputBytes: /),
    ]);
    expect(issues([{ input: '{stem}.aux', command: Array(33).fill('x') }])).toEqual([
      expect.stringMatching(/^projections\.0\.command: /),
    ]);
    expect(issues([{ input: '{stem}.aux', lines: 'a', shell: true }])).toEqual([
      expect.stringMatching(/^projections\.0: .*shell/),
    ]);
    expect(
      issues([
        { input: '{stem}.aux', lines: 'a' },
        { input: '{stem}.aux', lines: 'b' },
      ]),
    ).toEqual(['projections.1.input: "{stem}.aux" has a projection already']);
  });
});
