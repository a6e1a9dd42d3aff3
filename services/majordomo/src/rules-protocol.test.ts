import { DependencyManager } from '@computepods/depgraph';
import { CanBuildFrom, Rule } from '@computepods/protocol';
import { describe, expect, it } from 'vitest';
import { chooseAnswer } from './ask-chefs.js';
import { Auxiliaries } from './auxiliaries.js';
import { goalRuleId, goalSpec } from './goals.js';

const answer = (chef: string, extra: Partial<CanBuildFrom> = {}): CanBuildFrom =>
  CanBuildFrom.parse({
    goal: 'notes/n.txt.wc',
    chef,
    pod: 'p',
    canBuild: true,
    rule: 'wc',
    stem: 'notes/n.txt',
    from: ['notes/n.txt'],
    outputs: ['notes/n.txt.wc'],
    auxiliaries: ['notes/n.txt.wc.err'],
    ...extra,
  });

describe('choosing among "can build from" answers', () => {
  it('takes the first chef by name that can build, whatever the arrival order', () => {
    const answers = [answer('gamma'), answer('beta', { canBuild: false }), answer('alpha')];
    const { chosen, conflicts } = chooseAnswer(answers);
    expect(chosen?.chef).toBe('alpha');
    expect(conflicts.map((a) => a.chef)).toEqual(['gamma']);
    expect(chooseAnswer([...answers].reverse()).chosen?.chef).toBe('alpha');
  });

  it('chooses nothing when no chef can build', () => {
    expect(chooseAnswer([answer('a', { canBuild: false })])).toEqual({
      chosen: undefined,
      conflicts: [],
    });
    expect(chooseAnswer([])).toEqual({ chosen: undefined, conflicts: [] });
  });
});

describe('a goal as a concrete rule', () => {
  it('has an id unique to the goal and carries the chef, rule and stem for the request', () => {
    const a = answer('alpha');
    const spec = goalSpec(a);
    expect(spec).toMatchObject({
      id: goalRuleId(a),
      inputs: ['notes/n.txt'],
      outputs: ['notes/n.txt.wc'],
      meta: { chef: 'alpha', rule: 'wc', stem: 'notes/n.txt' },
    });
    expect(spec.id).toMatch(/^wc--[0-9a-f]{12}$/);
    expect(goalRuleId(answer('beta'))).toBe(spec.id);
    expect(goalRuleId({ ...a, goal: 'other.wc' })).not.toBe(spec.id);
    // The graph takes it as it is: one task, ready once its input exists.
    const dm = new DependencyManager();
    dm.addRule(spec);
    dm.setArtefact('notes/n.txt', 'a'.repeat(64));
    expect(dm.producerOf('notes/n.txt.wc')).toBe(`${spec.id}:`);
  });

  it('refuses answers that cannot be planned', () => {
    expect(() => goalSpec(answer('a', { from: ['x/{y}.txt'] }))).toThrow(/braces/);
    expect(() => goalSpec(answer('a', { from: [] }))).toThrow(/needs a rule, inputs/);
    expect(() => goalSpec(answer('a', { outputs: ['other'] }))).toThrow(/goal first/);
    // A validation error naming the field, as for any bad message.
    expect(() => goalSpec(answer('a', { optionalFrom: ['ok', 'x/{y}.aux'] }))).toThrow(
      expect.objectContaining({ code: 'CP_MESSAGE_INVALID', field: 'optionalFrom.1' }),
    );
  });
});

describe('auxiliary files', () => {
  const pdflatex = Rule.parse({
    id: 'pdflatex',
    inputs: ['{stem}.tex'],
    outputs: ['{stem}.pdf'],
    auxiliaries: ['{stem}.log', '{stem}.fls'],
    command: 'pdflatex {in0}',
  });

  it('belong to the task their pattern binds, only when that task exists', () => {
    const dm = new DependencyManager();
    dm.addRule({ id: 'pdflatex', inputs: ['{stem}.tex'], outputs: ['{stem}.pdf'] });
    dm.setArtefact('paper/main.tex', 'a'.repeat(64));
    const aux = new Auxiliaries();
    const of = (p: string) => aux.taskOf(p, [pdflatex], (q) => dm.producerOf(q));
    expect(of('paper/main.fls')).toBe('pdflatex:paper/main');
    expect(of('paper/main.log')).toBe('pdflatex:paper/main');
    // No paper/other.tex: a hand-written paper/other.log stays a source.
    expect(of('paper/other.log')).toBeUndefined();
    expect(of('paper/main.tex')).toBeUndefined();
  });

  it('named by an answer belong to its task until it is forgotten', () => {
    const aux = new Auxiliaries();
    aux.name('wc--0123456789ab:', ['notes/n.txt.wc.err']);
    expect(aux.taskOf('notes/n.txt.wc.err', [], () => undefined)).toBe('wc--0123456789ab:');
    aux.forget('wc--0123456789ab:');
    expect(aux.taskOf('notes/n.txt.wc.err', [], () => undefined)).toBeUndefined();
  });
});
