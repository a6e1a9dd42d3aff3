import { CanBuildFrom } from '@computepods/protocol';
import { describe, expect, it } from 'vitest';
import { MAX_GOAL_DEPTH, resolveGoal } from './resolve-goal.js';

/** Chefs with one on-demand rule `{stem}.wc` from `{stem}`; `have` holds what exists. */
function world(have: string[], chefs = ['alpha']) {
  const asked: string[] = [];
  return {
    asked,
    ask: async (goal: string) => {
      asked.push(goal);
      if (!goal.endsWith('.wc'))
        return chefs.map((chef) => CanBuildFrom.parse({ goal, chef, pod: 'p', canBuild: false }));
      const from = goal.slice(0, -3);
      return chefs.map((chef) =>
        CanBuildFrom.parse({
          goal,
          chef,
          pod: 'p',
          canBuild: have.includes(from),
          rule: 'wc',
          stem: from,
          from: [from],
          outputs: [goal],
        }),
      );
    },
    known: (p: string) => have.includes(p),
  };
}

describe('resolving a goal with "how to build"', () => {
  it('takes the first chef by name that can build it, naming the others', async () => {
    const r = await resolveGoal('a.wc', world(['a'], ['beta', 'alpha']));
    expect(r.adopt.map((a) => [a.goal, a.chef])).toEqual([['a.wc', 'alpha']]);
    expect(r.conflicts).toEqual([{ goal: 'a.wc', kept: 'alpha', ignored: 'beta' }]);
    expect(r.why).toBeUndefined();
  });

  it('asks for missing inputs in turn and plans them first', async () => {
    const w = world(['a']);
    const r = await resolveGoal('a.wc.wc.wc', w);
    expect(w.asked).toEqual(['a.wc.wc.wc', 'a.wc.wc', 'a.wc']);
    expect(r.adopt.map((a) => a.goal)).toEqual(['a.wc', 'a.wc.wc', 'a.wc.wc.wc']);
    expect(r.why).toBeUndefined();
  });

  it('says why, all the way down, when an input cannot be built', async () => {
    const r = await resolveGoal('b.wc', world(['a']));
    expect(r.adopt).toEqual([]);
    expect(r.why).toBe(
      'chef alpha could build b.wc from b, which is missing; none of the 1 chefs that answered can build b',
    );
  });

  it(`stops after ${MAX_GOAL_DEPTH} goals deep`, async () => {
    const w = world(['a']);
    const goal = `a${'.wc'.repeat(MAX_GOAL_DEPTH + 1)}`;
    const r = await resolveGoal(goal, w);
    expect(w.asked).toHaveLength(MAX_GOAL_DEPTH);
    expect(r.adopt).toEqual([]);
    expect(r.why).toMatch(/which is missing$/);
  });
});
