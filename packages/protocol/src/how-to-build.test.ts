import { describe, expect, it } from 'vitest';
import { buckets, CanBuildFrom, HowToBuild, messageTypes, Rule, subjects } from './index.js';

describe('"how to build" and "can build from"', () => {
  it('have their subject, bucket and message types', () => {
    expect(subjects.howToBuild('demo')).toBe('cp.demo.rules.how-to-build');
    expect(buckets.goals('demo')).toBe('cp_demo_goals');
    expect(messageTypes['rules.how_to_build']).toBe(HowToBuild);
    expect(messageTypes['rules.can_build_from']).toBe(CanBuildFrom);
  });

  it('refuse paths that leave the project, naming the field', () => {
    const q = HowToBuild.safeParse({ goal: 'a.pdf', have: ['ok.tex', '../etc/passwd'] });
    expect(q.success).toBe(false);
    expect(q.error?.issues[0]?.path).toEqual(['have', 1]);
    const a = CanBuildFrom.safeParse({ goal: '/abs', chef: 'c', pod: 'p', canBuild: true });
    expect(a.error?.issues[0]?.path).toEqual(['goal']);
  });

  it('default what an answer that cannot build leaves out', () => {
    expect(CanBuildFrom.parse({ goal: 'x.zip', chef: 'c', pod: 'p', canBuild: false })).toEqual({
      goal: 'x.zip',
      chef: 'c',
      pod: 'p',
      canBuild: false,
      from: [],
      optionalFrom: [],
      auxiliaries: [],
      outputs: [],
      stem: '',
    });
  });

  it('a rule lists its auxiliaries as project-relative patterns', () => {
    const base = { id: 'r', inputs: ['{stem}.tex'], outputs: ['{stem}.pdf'], command: 'x' };
    expect(Rule.parse(base)).toMatchObject({ auxiliaries: [], onDemand: false });
    const bad = Rule.safeParse({ ...base, auxiliaries: ['../{stem}.log'] });
    expect(bad.error?.issues[0]?.path).toEqual(['auxiliaries', 0]);
  });
});
