import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DependencyManager } from './dependency-manager.js';
import { Contents, modelArb } from './test-model.js';
import { choicesArb, editArb, Sim, stepsOf } from './test-sim.js';

const stepsArb = stepsOf(editArb(), { min: -1, max: 3 }, 6);

describe('the graph answer: toJSONPieces and version', () => {
  it('the pieces are JSON.stringify(toJSON()), and the same version always gives the same answer', () => {
    fc.assert(
      fc.property(
        modelArb({ cycles: true, discover: true }),
        stepsArb,
        choicesArb,
        fc.integer({ min: 1, max: 3 }),
        (model, steps, choices, concurrency) => {
          const sim = new Sim(model, new Contents(), 6, concurrency, choices);
          const seen = new Map<number, string>();
          let changes = 0;
          let last = '';
          sim.onStep = () => {
            const text = sim.dm.toJSONPieces().join('');
            expect(text).toBe(JSON.stringify(sim.dm.toJSON()));
            const before = seen.get(sim.dm.version);
            // A version seen before: nothing changed since, the answer kept for it is still it.
            if (before !== undefined) expect(text).toBe(before);
            seen.set(sim.dm.version, text);
            if (text !== last) changes++;
            last = text;
          };
          sim.complete(-1);
          for (const { edit, runs } of steps) {
            sim.apply(edit);
            sim.complete(runs);
          }
          sim.complete(-1);
          // The property looked at answers that changed (it is not vacuous).
          expect(changes).toBeGreaterThan(1);
        },
      ),
      { numRuns: 100 },
    );
  });

  it('pieces stay small: many for a big graph, each a few tens of KB at most', () => {
    const dm = new DependencyManager();
    dm.addRule({ id: 'cc', inputs: ['src/{stem}.c'], outputs: ['obj/{stem}.o'] });
    dm.batch(() => {
      for (let i = 0; i < 5_000; i++) dm.setArtefact(`src/dir${i % 50}/file${i}.c`, `h${i}`);
    });
    const pieces = dm.toJSONPieces();
    expect(pieces.join('')).toBe(JSON.stringify(dm.toJSON()));
    expect(pieces.length).toBeGreaterThan(100);
    expect(Math.max(...pieces.map((p) => p.length))).toBeLessThan(64 * 1024);
  });

  it('the version moves with a change, a started run and a completed one, and not with a query', () => {
    const dm = new DependencyManager();
    dm.addRule({ id: 'up', inputs: ['src/{stem}.txt'], outputs: ['out/{stem}.up'] });
    const v0 = dm.version;
    dm.setArtefact('src/a.txt', 'h1');
    const v1 = dm.version;
    expect(v1).toBeGreaterThan(v0);
    dm.status();
    dm.toJSONPieces();
    dm.plan();
    dm.why('out/a.up');
    dm.ready();
    expect(dm.version).toBe(v1);
    const [task] = dm.take();
    expect(task?.id).toBe('up:a');
    const v2 = dm.version;
    expect(v2).toBeGreaterThan(v1);
    dm.completed('up:a', { outputs: { 'out/a.up': 'o1' }, run: task?.run });
    expect(dm.version).toBeGreaterThan(v2);
  });
});
