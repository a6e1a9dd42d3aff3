import { Rule } from '@computepods/protocol';
import { describe, expect, it } from 'vitest';
import { canBuildFrom } from './how-to-build.js';

const who = { chef: 'gen', pod: 'p1' };
const rules = [
  Rule.parse({
    id: 'pdf-from-svg',
    inputs: ['fig/{stem}.svg'],
    outputs: ['fig/{stem}.pdf'],
    command: 'convert {in0} {out0}',
  }),
  Rule.parse({
    id: 'pdflatex',
    inputs: ['{stem}.tex'],
    optionalInputs: ['{stem}.aux'],
    outputs: ['{stem}.pdf', '{stem}.aux'],
    auxiliaries: ['{stem}.log'],
    command: 'pdflatex {in0}',
  }),
  Rule.parse({
    id: 'pair',
    inputs: ['{dir}/{name}.in'],
    outputs: ['{dir}/{name}.out', 'all.out'],
    command: 'cp {in0} {out0}',
    onDemand: true,
  }),
];

describe('can build from', () => {
  it('answers with the first rule whose inputs it has, filled for the goal', () => {
    expect(canBuildFrom(rules, who, { goal: 'paper/main.pdf', have: ['paper/main.tex'] })).toEqual({
      goal: 'paper/main.pdf',
      chef: 'gen',
      pod: 'p1',
      canBuild: true,
      rule: 'pdflatex',
      stem: 'paper/main',
      from: ['paper/main.tex'],
      optionalFrom: ['paper/main.aux'],
      auxiliaries: ['paper/main.log'],
      outputs: ['paper/main.pdf', 'paper/main.aux'],
    });
    // A figure: the first rule matches and has its input; the goal comes first in outputs.
    expect(
      canBuildFrom(rules, who, { goal: 'fig/a.pdf', have: ['fig/a.svg', 'fig/a.tex'] }),
    ).toMatchObject({ canBuild: true, rule: 'pdf-from-svg', from: ['fig/a.svg'] });
    expect(canBuildFrom(rules, who, { goal: 'fig/a.pdf', have: ['fig/a.tex'] })).toMatchObject({
      canBuild: true,
      rule: 'pdflatex',
      stem: 'fig/a',
    });
  });

  it('says what it would need when it lacks the inputs, and nothing when no rule matches', () => {
    expect(canBuildFrom(rules, who, { goal: 'fig/b.pdf', have: [] })).toMatchObject({
      canBuild: false,
      rule: 'pdf-from-svg',
      from: ['fig/b.svg'],
    });
    expect(canBuildFrom(rules, who, { goal: 'x.zip', have: ['x'] })).toEqual({
      goal: 'x.zip',
      chef: 'gen',
      pod: 'p1',
      canBuild: false,
      from: [],
      optionalFrom: [],
      auxiliaries: [],
      outputs: [],
      stem: '',
    });
  });

  it('uses an output that binds every placeholder, with a name=value stem', () => {
    expect(canBuildFrom(rules, who, { goal: 'a/b.out', have: ['a/b.in'] })).toMatchObject({
      canBuild: true,
      rule: 'pair',
      stem: 'dir=a,name=b',
      outputs: ['a/b.out', 'all.out'],
    });
    // all.out alone does not say which instance makes it.
    expect(canBuildFrom(rules, who, { goal: 'all.out', have: ['a/b.in'] }).canBuild).toBe(false);
  });
});
