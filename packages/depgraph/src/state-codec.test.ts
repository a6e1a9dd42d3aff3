import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DependencyManager } from './dependency-manager.js';
import { StateCorruptError } from './errors.js';
import { takeSnapshot } from './snapshot.js';
import { decodeSnapshot, encodeSnapshot } from './state-codec.js';
import { drive, sha } from './test-harness.js';
import { Contents, type Model, modelArb } from './test-model.js';
import { type Edit, editArb, Sim, stepsOf } from './test-sim.js';
import type { TaskInstance } from './types.js';

const pure = (t: TaskInstance) => ({
  outputs: Object.fromEntries(
    t.outputs.map((o) => [o, sha(`${t.ruleId}|${o}|${JSON.stringify(t.inputHashes)}`)]),
  ),
});

/** Everything a caller can observe of a graph at rest, component numbers included. */
function observe(dm: DependencyManager) {
  return {
    plan: dm.plan(),
    graph: dm.toJSON(),
    status: dm.status(),
    ready: dm.ready().map((t) => t.id),
    state: dm.exportState(),
  };
}

const stepsArb = stepsOf(editArb(), { min: -1, max: 3 }, 5);

/** A graph with cycles, discovered dependencies, retired rules and pending work. */
function played(model: Model, steps: Array<{ edit: Edit; runs: number }>) {
  const sim = new Sim(model, new Contents(), 12, 2, [0]);
  sim.complete(-1);
  for (const { edit, runs } of steps) {
    sim.apply(edit);
    sim.complete(runs);
  }
  return sim.dm;
}

describe('compact state (exportBytes / fromBytes)', () => {
  it('round-trips random graphs with cycles to the identical plan, and they build alike', () => {
    fc.assert(
      fc.property(
        modelArb({ cycles: true, discover: true, modes: ['pure', 'const', 'sat1', 'sat2'] }),
        stepsArb,
        fc.nat({ max: 20 }),
        (model, steps, edited) => {
          const live = played(model, steps);
          // A fresh restore (nothing running), then the same graph through the compact form.
          const a = DependencyManager.fromState(live.exportState(), { passLimit: 12 });
          const b = DependencyManager.fromBytes(a.exportBytes(), { passLimit: 12 });
          expect(observe(b)).toEqual(observe(a));
          // A restored graph (traces and consumer lists still packed) exports the same again.
          const c = DependencyManager.fromBytes(
            DependencyManager.fromBytes(a.exportBytes(), { passLimit: 12 }).exportBytes(),
            { passLimit: 12 },
          );
          expect(observe(c)).toEqual(observe(a));
          // The live graph's tasks come back as they are, numbering aside.
          const tasks = (dm: DependencyManager) =>
            dm.toJSON().tasks.map(({ component, ...t }) => t);
          expect(tasks(DependencyManager.fromBytes(live.exportBytes()))).toEqual(tasks(live));
          // An edit, then building to the end: the same runs in the same order.
          const source = model.sources[edited % model.sources.length];
          if (source !== undefined) {
            for (const dm of [a, b]) dm.setArtefact(source, sha(`edited ${edited}`));
            expect(observe(b)).toEqual(observe(a));
          }
          const runs = (dm: DependencyManager) =>
            drive(dm, pure, { concurrency: 2 }).map((r) => r.task.id);
          expect(runs(b)).toEqual(runs(a));
          expect(observe(b)).toEqual(observe(a));
        },
      ),
      { numRuns: 60 },
    );
  });

  it('exports a restored graph without unpacking it: the same bytes as once unpacked', () => {
    fc.assert(
      fc.property(
        modelArb({ cycles: true, discover: true, modes: ['pure', 'const', 'sat1', 'sat2'] }),
        stepsArb,
        (model, steps) => {
          const live = played(model, steps);
          const bytes = DependencyManager.fromState(live.exportState()).exportBytes();
          const restored = DependencyManager.fromBytes(bytes);
          const g = graphOf(restored);
          const packed = () => ({
            traces: [...g.traces.keys()].filter((id) => g.traces.packedOffset(id) !== undefined),
            readers: [...packedAtOf(g)].filter((at) => at >= 0).length,
          });
          const before = packed();
          const again = Buffer.from(restored.exportBytes());
          expect(packed()).toEqual(before);
          expect(again).toEqual(Buffer.from(bytes));
          // Every trace and consumer list unpacked: written the same.
          for (const id of [...g.traces.keys()]) g.traces.get(id);
          for (let p = 0; p < g.paths.length; p++) g.readers(p);
          expect(packed()).toEqual({ traces: [], readers: 0 });
          expect(Buffer.from(restored.exportBytes())).toEqual(again);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('still loads the older JSON form, and checks its shape', () => {
    const dm = new DependencyManager();
    dm.addRule({ id: 'cc', inputs: ['src/{stem}.c'], outputs: ['obj/{stem}.o'] });
    dm.setArtefact('src/a.c', sha('a'));
    drive(dm, pure);
    const json = Buffer.from(JSON.stringify(dm.exportState()));
    expect(observe(DependencyManager.fromBytes(json))).toEqual(
      observe(DependencyManager.fromState(dm.exportState())),
    );
    const bad = (text: string) => () => DependencyManager.fromBytes(Buffer.from(text));
    expect(bad('{"rules":[],"artefacts":{}')).toThrow(StateCorruptError);
    expect(bad('{"rules":[],"artefacts":{}')).toThrow(/at json: neither an encoded state/);
    expect(bad('{"rules":{},"artefacts":{},"traces":{}}')).toThrow(/at rules/);
    expect(bad('{"rules":[],"artefacts":[],"traces":{}}')).toThrow(/at artefacts/);
    expect(bad('{"rules":[],"artefacts":{},"traces":{"t":1}}')).toThrow(/at traces/);
  });

  describe('a damaged file is refused, never loaded as another graph', () => {
    const dm = new DependencyManager();
    dm.addRule({
      id: 'tex',
      inputs: ['{stem}.tex'],
      optionalInputs: ['{stem}.aux'],
      outputs: ['{stem}.pdf', '{stem}.aux'],
    });
    dm.setArtefact('p.tex', sha('p'));
    drive(dm, pure);
    const bytes = Buffer.from(dm.exportBytes());

    it('truncated anywhere', () => {
      for (let n = 0; n < bytes.length; n += 7) {
        expect(() => DependencyManager.fromBytes(bytes.subarray(0, n))).toThrow(StateCorruptError);
      }
    });

    it('any byte changed', () => {
      for (let i = 8; i < bytes.length; i += 5) {
        const copy = Buffer.from(bytes);
        copy[i] = (copy[i] ?? 0) ^ 0x5a;
        expect(() => DependencyManager.fromBytes(copy)).toThrow(StateCorruptError);
      }
    });

    it('a checksum left unchecked only for a caller that verified the bytes itself', () => {
      const copy = Buffer.from(bytes);
      copy.writeUInt32LE((copy.readUInt32LE(16) + 1) >>> 0, 16);
      expect(() => DependencyManager.fromBytes(copy)).toThrow(/at checksum/);
      const loaded = DependencyManager.fromBytes(copy, undefined, { verified: true });
      expect(observe(loaded)).toEqual(observe(DependencyManager.fromBytes(bytes)));
    });

    it('a wrong version, or trailing bytes', () => {
      const copy = Buffer.from(bytes);
      copy.writeUInt32LE(99, 8);
      expect(() => DependencyManager.fromBytes(copy)).toThrow(/at version: version 99/);
      const longer = Buffer.concat([bytes, Buffer.alloc(4)]);
      expect(() => DependencyManager.fromBytes(longer)).toThrow(/at length: .*trailing bytes/);
    });

    it('a well-formed file that contradicts itself (checksum right)', () => {
      const snap = takeSnapshot(graphOf(dm));
      const tasks = Uint32Array.from(snap.tasks);
      tasks[1] = 7; // a rule index that does not exist
      expect(() => DependencyManager.fromBytes(encodeSnapshot({ ...snap, tasks }))).toThrow(
        /at tasks: task tex:p does not fit its rule/,
      );
      const hashes = Uint32Array.from(snap.hashes, () => snap.strings.length + 1);
      expect(() => decodeSnapshot(encodeSnapshot({ ...snap, hashes }))).toThrow(/at hashes/);
      const strings = [...snap.strings];
      strings[0] = '../p.tex';
      expect(() => DependencyManager.fromBytes(encodeSnapshot({ ...snap, strings }))).toThrow(
        /invalid artefact path/,
      );
      const twice = [...snap.strings];
      twice[1] = twice[0] ?? '';
      expect(() =>
        DependencyManager.fromBytes(encodeSnapshot({ ...snap, strings: twice })),
      ).toThrow(/at paths: a path appears twice/);
      // p.tex is read by tex:p (task 0); say no task reads it.
      const consumers = Uint32Array.from(snap.consumers);
      expect([consumers[0], consumers[1]]).toEqual([1, 0]);
      consumers[0] = 0;
      expect(() => DependencyManager.fromBytes(encodeSnapshot({ ...snap, consumers }))).toThrow(
        /at consumers/,
      );
    });
  });

  it('derives the tasks again when loaded with another derivation depth', () => {
    const dm = new DependencyManager();
    dm.addRule({ id: 'x', inputs: ['{stem}.x'], outputs: ['{stem}.x.x'] });
    dm.setArtefact('a.x', sha('a'));
    const deep = DependencyManager.fromBytes(dm.exportBytes(), { maxDerivationDepth: 3 });
    expect(observe(deep)).toEqual(
      observe(DependencyManager.fromState(dm.exportState(), { maxDerivationDepth: 3 })),
    );
    expect(deep.toJSON().tasks.length).toBe(3);
    expect(dm.toJSON().tasks.length).toBe(64);
  });
});

/** The manager's graph, for taking a snapshot by hand. */
function graphOf(dm: DependencyManager) {
  return (dm as unknown as { graph: Parameters<typeof takeSnapshot>[0] }).graph;
}

/** Where each path's consumer list starts in the restored words (-1: a list of its own). */
function packedAtOf(g: ReturnType<typeof graphOf>): Int32Array {
  return (g as unknown as { packedAt: Int32Array }).packedAt;
}
