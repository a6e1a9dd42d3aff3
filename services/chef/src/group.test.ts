import { type BuildRequested, Rule, type RuleInput } from '@computepods/protocol';
import { describe, expect, it } from 'vitest';
import { checkSteps, stepIds, stepsCommand } from './group.js';

const h = 'a'.repeat(64);
const cc = (r: Partial<RuleInput> = {}) =>
  Rule.parse({
    id: 'cc',
    inputs: ['src/{stem}.c'],
    optionalInputs: ['src/{stem}.opt'],
    outputs: ['obj/{stem}.o', 'obj/{stem}.d'],
    auxiliaries: ['obj/{stem}.log'],
    command: 'cc -c {in0} -o {out0} -MMD -MF {out1} # {stem}',
    discover: 'makedepend',
    ...r,
  });
const step = (stem: string) => ({
  taskId: `cc:${stem}`,
  stem,
  outputs: [`obj/${stem}.o`, `obj/${stem}.d`],
});
/** A group of a, b and c, each with its source, b with its optional input, one header found. */
const group = (r: Partial<BuildRequested> = {}): BuildRequested => ({
  buildId: '0123456789abcdef',
  ...step('a'),
  ruleId: 'cc',
  chef: 'c',
  inputs: { 'src/a.c': h, 'src/b.c': h, 'src/b.opt': h, 'src/c.c': h, 'inc/x.h': h },
  pass: 1,
  locations: {},
  group: [step('b'), step('c')],
  ...r,
});

describe('a group request checked against the chef’s own rule', () => {
  it('gives each step its own paths, and the group the union of theirs', () => {
    const { paths, steps } = checkSteps(cc(), group());
    expect(stepIds(group())).toEqual(['cc:a', 'cc:b', 'cc:c']);
    expect(steps.map((s) => [s.taskId, s.stem, s.paths.args])).toEqual([
      ['cc:a', 'a', ['src/a.c']],
      ['cc:b', 'b', ['src/b.c', 'src/b.opt']],
      ['cc:c', 'c', ['src/c.c']],
    ]);
    expect(paths).toMatchObject({
      args: ['src/a.c', 'src/b.c', 'src/b.opt', 'src/c.c'],
      discovered: ['inc/x.h'],
      inputs: ['src/a.c', 'src/b.c', 'src/b.opt', 'src/c.c', 'inc/x.h'],
      outputs: ['obj/a.o', 'obj/a.d', 'obj/b.o', 'obj/b.d', 'obj/c.o', 'obj/c.d'],
      auxiliaries: ['obj/a.log', 'obj/b.log', 'obj/c.log'],
    });
    // A shared rule input is listed once.
    const shared = cc({ inputs: ['src/{stem}.c', 'config.h'] });
    const withConfig = group({ inputs: { ...group().inputs, 'config.h': h } });
    expect(checkSteps(shared, withConfig).paths.args).toEqual([
      'src/a.c',
      'config.h',
      'src/b.c',
      'src/b.opt',
      'src/c.c',
    ]);
  });

  it('checks a lone request as checkRequest does: one step', () => {
    const lone = group({ group: undefined, inputs: { 'src/a.c': h } });
    const { paths, steps } = checkSteps(cc(), lone);
    expect(steps).toEqual([{ taskId: 'cc:a', stem: 'a', paths }]);
    expect(stepIds(lone)).toEqual(['cc:a']);
  });

  const { 'src/b.c': _, ...withoutB } = group().inputs;
  it.each<[string, Rule, Partial<BuildRequested>, RegExp]>([
    [
      'a rule with projections',
      cc({ projections: [{ input: 'src/{stem}.c', lines: '^#include' }] }),
      {},
      /^group: step "cc:a" \(the request’s own\): rule cc projects inputs/,
    ],
    [
      'lastRun',
      cc(),
      { lastRun: { inputs: {}, outputs: {} } },
      /^group: step "cc:a" \(the request’s own\): lastRun is never sent with a group/,
    ],
    [
      'two steps with one task id',
      cc(),
      { group: [step('b'), { ...step('c'), taskId: 'cc:b' }] },
      /^group: step "cc:b" \(group\[1\]\): another step has the same task id/,
    ],
    [
      'two steps with one output',
      cc({ outputs: ['obj/{stem}.o', 'obj/all.d'] }),
      {
        outputs: ['obj/a.o', 'obj/all.d'],
        group: [{ ...step('b'), outputs: ['obj/b.o', 'obj/all.d'] }],
      },
      /^group: step "cc:b" \(group\[0\]\): its output "obj\/all\.d" is step cc:a's too/,
    ],
    [
      "a step's outputs not its rule's",
      cc(),
      { group: [step('b'), { ...step('c'), outputs: ['src/main.c'] }] },
      /^group: step "cc:c" \(group\[1\]\): rule cc: the request's outputs differ .*not the rule's \["src\/main\.c"\]; missing \["obj\/c\.o", "obj\/c\.d"\]/,
    ],
    [
      "a step's required input without a hash",
      cc(),
      { inputs: withoutB },
      /^group: step "cc:b" \(group\[0\]\): inputs has no hash for its required inputs \["src\/b\.c"\]/,
    ],
    [
      'an input no step reads, for a rule that discovers nothing',
      cc({ discover: 'none' }),
      {},
      /^group: step "cc:a" \(the request’s own\): inputs \["inc\/x\.h"\] are no step's rule inputs.*rule cc discovers no dependencies/,
    ],
    [
      "an input that is another step's output",
      cc(),
      { inputs: { ...group().inputs, 'obj/c.o': h } },
      /^group: step "cc:a" \(the request’s own\): inputs \["obj\/c\.o"\] are no step's rule inputs.*step cc:c writes "obj\/c\.o"/,
    ],
    [
      "an input that is another step's auxiliary",
      cc(),
      { inputs: { ...group().inputs, 'obj/b.log': h } },
      /inputs \["obj\/b\.log"\] are no step's rule inputs.*step cc:b writes "obj\/b\.log"/,
    ],
  ])('refuses a group with %s, naming group and the step', (_why, rule, r, message) => {
    const req = group(r);
    expect(() => checkSteps(rule, req)).toThrow(message);
    expect(() => checkSteps(rule, req)).toThrow(
      expect.objectContaining({ code: 'CP_CHEF_REQUEST_MISMATCH' }),
    );
  });

  it("refuses a step reading what another step writes (the group's steps run in one task)", () => {
    // Step x.o's source is step x's object: it would be read before step x wrote it.
    const chain = cc({ inputs: ['{stem}.c'], outputs: ['{stem}.o.c'], auxiliaries: [] });
    const req = group({
      taskId: 'cc:x',
      stem: 'x',
      outputs: ['x.o.c'],
      inputs: { 'x.c': h, 'x.o.c': h },
      group: [{ taskId: 'cc:x.o', stem: 'x.o', outputs: ['x.o.o.c'] }],
    });
    expect(() => checkSteps(chain, req)).toThrow(
      /^group: step "cc:x\.o" \(group\[0\]\): its input "x\.o\.c" is written by step cc:x/,
    );
  });

  it('keeps the code of an unsafe path, naming the step', () => {
    const bad = group({ group: [{ ...step('b'), stem: '../b' }] });
    expect(() => checkSteps(cc(), bad)).toThrow(
      expect.objectContaining({
        code: 'CP_CHEF_UNSAFE_STEM',
        message: expect.stringMatching(/^group: step "cc:b" \(group\[0\]\): /),
      }),
    );
  });
});

describe("a group's command", () => {
  it("runs each step's own command in turn, each in a subshell on lines of its own", () => {
    const { steps } = checkSteps(cc(), group());
    expect(stepsCommand(cc().command, steps)).toBe(
      [
        "(\ncc -c 'src/a.c' -o 'obj/a.o' -MMD -MF 'obj/a.d' # 'a'\n)",
        "(\ncc -c 'src/b.c' -o 'obj/b.o' -MMD -MF 'obj/b.d' # 'b'\n)",
        "(\ncc -c 'src/c.c' -o 'obj/c.o' -MMD -MF 'obj/c.d' # 'c'\n)",
      ].join(' && '),
    );
  });

  it("is a lone step's own command, as it always was", () => {
    const { steps } = checkSteps(cc(), group({ group: undefined, inputs: { 'src/a.c': h } }));
    expect(stepsCommand(cc().command, steps)).toBe(
      "cc -c 'src/a.c' -o 'obj/a.o' -MMD -MF 'obj/a.d' # 'a'",
    );
  });

  it('refuses a group whose joined command is longer than a task takes', () => {
    const long = cc({ command: `true ${'x'.repeat(9_000)} {in0}` });
    const stems = Array.from({ length: 12 }, (_, i) => `s${i}`);
    const req = group({
      inputs: Object.fromEntries(['a', ...stems].map((s) => [`src/${s}.c`, h])),
      group: stems.map(step),
    });
    expect(() => stepsCommand(long.command, checkSteps(long, req).steps)).toThrow(
      /^group: the 13 steps' commands joined are \d+ characters, more than a task's 100000/,
    );
  });
});
