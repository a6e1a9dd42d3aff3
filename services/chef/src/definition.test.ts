import { describe, expect, it } from 'vitest';
import { ChefDefinitionError, parseDefinition } from './definition.js';

const rule = (extra: string) =>
  [
    'rules:',
    '  - id: tex',
    "    inputs: ['{stem}.tex']",
    "    outputs: ['{stem}.pdf']",
    '    command: pdflatex {in0}',
    extra,
  ].join('\n');

describe('chef definition: auxiliaries and on-demand rules', () => {
  it('accepts auxiliaries bound by the first input, and defaults both fields', () => {
    const def = parseDefinition(rule("    auxiliaries: ['{stem}.log', '{stem}.fls']"), 'a.yaml');
    expect(def.rules[0]).toMatchObject({
      auxiliaries: ['{stem}.log', '{stem}.fls'],
      onDemand: false,
    });
    expect(parseDefinition(rule(''), 'b.yaml').rules[0]?.auxiliaries).toEqual([]);
  });

  it.each([
    ["    auxiliaries: ['{name}.log']", /rules\.0\.auxiliaries\.0: placeholder \{name\}/],
    ["    auxiliaries: ['{stem}.pdf']", /rules\.0\.auxiliaries\.0: .* is an output already/],
    [
      "    auxiliaries: ['/tmp/{stem}.log']",
      /rules\.0\.auxiliaries\.0: a pattern is project-relative/,
    ],
    ['    auxiliaries: x.log', /rules\.0\.auxiliaries: /],
    ['    onDemand: sometimes', /rules\.0\.onDemand: /],
  ])('refuses %s, naming the field', (extra, message) => {
    expect(() => parseDefinition(rule(extra), 'bad.yaml')).toThrowError(ChefDefinitionError);
    expect(() => parseDefinition(rule(extra), 'bad.yaml')).toThrowError(message);
  });
});
