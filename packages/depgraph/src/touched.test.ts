import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { DependencyManager } from './dependency-manager.js';
import { Contents, modelArb } from './test-model.js';
import { choicesArb, editArb, Sim, stepsOf } from './test-sim.js';

const stepsArb = stepsOf(editArb(), { min: 0, max: 4 }, 8);

/**
 * takeTouched() names every path whose artefactState() changed since the last call (or says it
 * cannot: undefined), after edits, rule changes, runs started, completed and cancelled, cycles
 * and discovered dependencies. MajorDomo refreshes only those records; a path left out would keep
 * a stale state in KV.
 */
describe('takeTouched', () => {
  it('names every path whose state changed since the last call', () => {
    fc.assert(
      fc.property(
        modelArb({ cycles: true, discover: true }),
        stepsArb,
        choicesArb,
        (model, steps, choices) => {
          const sim = new Sim(model, new Contents(), 6, 2, choices);
          const seen = new Set<string>();
          const states = (dm: DependencyManager) => {
            for (const a of dm.toJSON().artefacts) seen.add(a.path);
            return new Map([...seen].map((p) => [p, dm.artefactState(p)]));
          };
          let before = states(sim.dm);
          sim.dm.takeTouched();
          let checked = 0;
          const check = () => {
            const touched = sim.dm.takeTouched();
            const now = states(sim.dm);
            if (touched) {
              const named = new Set(touched);
              for (const [p, s] of now)
                if (before.get(p) !== s && !(before.get(p) === undefined && s === 'missing')) {
                  expect({ path: p, from: before.get(p), to: s, named: named.has(p) }).toEqual({
                    path: p,
                    from: before.get(p),
                    to: s,
                    named: true,
                  });
                  checked++;
                }
            }
            before = now;
          };
          for (const { edit, runs } of steps) {
            sim.apply(edit);
            check();
            for (let i = 0; i < runs; i++) {
              sim.complete(1);
              check();
            }
          }
          sim.complete(-1);
          check();
          return checked >= 0;
        },
      ),
      { numRuns: 200 },
    );
  });
});
