import { type BuildRequested, Rule, type RuleInput } from '@computepods/protocol';
import { describe, expect, it } from 'vitest';
import { checkRequest, rulePaths } from './rule-paths.js';
import { stemBindings } from './stem.js';

const h = 'a'.repeat(64);
const rule = (r: Partial<RuleInput> = {}) =>
  Rule.parse({
    id: 'upper',
    inputs: ['src/{stem}.txt'],
    outputs: ['out/{stem}.upper'],
    command: 'tr a-z A-Z < {in0} > {out0}',
    ...r,
  });
const request = (r: Partial<BuildRequested> = {}): BuildRequested => ({
  buildId: '0123456789abcdef',
  taskId: 'upper:a',
  ruleId: 'upper',
  chef: 'text',
  stem: 'a',
  inputs: { 'src/a.txt': h },
  outputs: ['out/a.upper'],
  pass: 1,
  locations: {},
  ...r,
});

describe('stems', () => {
  it.each([
    ['/home/alice/thesis', /stem "\/home\/alice\/thesis" refused: \{stem\} is absolute/],
    ['../x', /climbs out with "\.\."/],
    ['a/../../x', /climbs out/],
    ['a\nb', /control characters/],
    ['a\u001b[2Jb', /control characters/],
    ['a\u0085b', /control characters/],
    ['x'.repeat(2049), /longer than 2048/],
    ['', /\{stem\} is empty/],
    ['a\\b', /backslash/],
  ])('refuses %j with CP_CHEF_UNSAFE_STEM, saying why', (stem, why) => {
    expect(() => stemBindings(rule(), stem)).toThrow(why);
    expect(() => stemBindings(rule(), stem)).toThrow(
      expect.objectContaining({ code: 'CP_CHEF_UNSAFE_STEM', retryable: false }),
    );
  });

  it('reads name=value stems in the first input’s order, values holding commas', () => {
    const multi = rule({ inputs: ['{dir}/{stem}.x'], outputs: ['{dir}/{stem}.y'] });
    expect(stemBindings(multi, 'dir=a,stem=b/c')).toEqual({ dir: 'a', stem: 'b/c' });
    expect(stemBindings(multi, 'dir=a,b,stem=c')).toEqual({ dir: 'a,b', stem: 'c' });
    expect(stemBindings(rule(), 'a,b')).toEqual({ stem: 'a,b' });
    expect(() => stemBindings(multi, 'stem=c,dir=a')).toThrow(/expected dir=…,stem=…/);
    expect(() => stemBindings(multi, 'dir=a/b,stem=c')).toThrow(/\{dir\} spans a "\/"/);
    expect(() => stemBindings(multi, 'dir=..,stem=c')).toThrow(/climbs out/);
  });

  it('wants an empty stem for a rule without placeholders', () => {
    const fixed = rule({ inputs: ['a.txt'], outputs: ['b.txt'] });
    expect(rulePaths(fixed, '').outputs).toEqual(['b.txt']);
    expect(() => rulePaths(fixed, 'x')).toThrow(/no placeholders/);
  });
});

describe('a build request checked against the chef’s own rule', () => {
  it('accepts what the rule gives and passes the rule’s paths on', () => {
    const paths = checkRequest(rule(), request());
    expect(paths).toMatchObject({
      args: ['src/a.txt'],
      outputs: ['out/a.upper'],
      inputs: ['src/a.txt'],
      discovered: [],
    });
  });

  it('refuses forged outputs, naming the rule, the field and the difference', () => {
    const forged = request({ outputs: ['src/main.c'] });
    expect(() => checkRequest(rule(), forged)).toThrow(
      expect.objectContaining({ code: 'CP_CHEF_REQUEST_MISMATCH' }),
    );
    expect(() => checkRequest(rule(), forged)).toThrow(
      /^rule upper: the request's outputs differ from what the rule gives for stem "a": not the rule's \["src\/main\.c"\]; missing \["out\/a\.upper"\]\. .*nothing was run or written$/,
    );
    // An extra output next to the right one is refused as well.
    expect(() => checkRequest(rule(), request({ outputs: ['out/a.upper', 'src/a.txt'] }))).toThrow(
      /not the rule's \["src\/a\.txt"\]$|not the rule's \["src\/a\.txt"\]\./,
    );
  });

  it('refuses a missing required input, and inputs a rule that discovers nothing cannot have', () => {
    expect(() => checkRequest(rule(), request({ inputs: { 'src/b.txt': h } }))).toThrow(
      /inputs differ .*not the rule's \["src\/b\.txt"\]; missing \["src\/a\.txt"\]/,
    );
    expect(() => checkRequest(rule(), request({ inputs: { 'src/a.txt': h, 'etc/x': h } }))).toThrow(
      /inputs differ .*not the rule's \["etc\/x"\]/,
    );
  });

  it('takes discovered inputs for a discovering rule, never one of its products', () => {
    const cc = rule({
      id: 'cc',
      inputs: ['{stem}.c'],
      outputs: ['{stem}.o', '{stem}.d'],
      auxiliaries: ['{stem}.log'],
      discover: 'makedepend',
    });
    const req = request({ stem: 'm', inputs: { 'm.c': h, 'inc/a.h': h }, outputs: ['m.o', 'm.d'] });
    expect(checkRequest(cc, req)).toMatchObject({
      args: ['m.c'],
      discovered: ['inc/a.h'],
      auxiliaries: ['m.log'],
    });
    expect(() => checkRequest(cc, { ...req, inputs: { 'm.c': h, 'm.log': h } })).toThrow(
      /not the rule's \["m\.log"\]/,
    );
    expect(() => checkRequest(cc, { ...req, inputs: { 'm.c': h, 'a\nb.h': h } })).toThrow(
      expect.objectContaining({ code: 'CP_CHEF_UNSAFE_PATH' }),
    );
  });

  it('gives {in} the optional inputs that exist, and accepts outputs in any order (a goal first)', () => {
    const link = rule({
      id: 'link',
      inputs: ['{stem}/main.o'],
      optionalInputs: ['{stem}/util.o', '{stem}/lib.o'],
      outputs: ['{stem}/prog', '{stem}/prog.map'],
      discover: 'makedepend',
    });
    const paths = checkRequest(
      link,
      request({
        stem: 'src',
        inputs: { 'src/main.o': h, 'src/lib.o': h, 'src/extra.h': h },
        outputs: ['src/prog.map', 'src/prog'],
      }),
    );
    expect(paths.args).toEqual(['src/main.o', 'src/lib.o']);
    expect(paths.outputs).toEqual(['src/prog', 'src/prog.map']);
    expect(paths.discovered).toEqual(['src/extra.h']);
  });

  it('refuses filled paths that are not plain workspace paths', () => {
    expect(() => rulePaths(rule({ inputs: ['{stem}'], outputs: ['{stem}.o'] }), 'a/./b')).toThrow(
      /inputs\[0\] "a\/\.\/b" .*not in normal form/,
    );
  });
});
