import { defined } from '@computepods/testkit';
import { describe, expect, it } from 'vitest';
import { DependencyManager } from './dependency-manager.js';
import { drive, sha } from './test-harness.js';
import type { TaskInstance } from './types.js';

/** Every output is a function of the rule, the output path and the input hashes. */
const pure = (t: TaskInstance) => ({
  outputs: Object.fromEntries(
    t.outputs.map((o) => [o, sha(`${t.ruleId}|${o}|${JSON.stringify(t.inputHashes)}`)]),
  ),
});

const ids = (runs: { task: TaskInstance }[]) => runs.map((r) => r.task.id);

function chain() {
  const dm = new DependencyManager();
  dm.addRule({ id: 'upper', inputs: ['src/{stem}.txt'], outputs: ['out/{stem}.upper'] });
  dm.addRule({ id: 'wrap', inputs: ['out/{stem}.upper'], outputs: ['out/{stem}.html'] });
  dm.addRule({
    id: 'index',
    inputs: ['out/a.html', 'out/b.html'],
    outputs: ['site/index.html'],
  });
  dm.setArtefact('src/a.txt', sha('a1'));
  dm.setArtefact('src/b.txt', sha('b1'));
  return dm;
}

/** Three C sources compiled (rule cc: src/{stem}.c -> obj/{stem}.o), the graph restored from its bytes. */
function restoredThreeObjects(): DependencyManager {
  const dm = new DependencyManager();
  dm.addRule({ id: 'cc', inputs: ['src/{stem}.c'], outputs: ['obj/{stem}.o'] });
  for (const stem of ['a', 'b', 'c']) dm.setArtefact(`src/${stem}.c`, sha(stem));
  drive(dm, pure);
  return DependencyManager.fromBytes(dm.exportBytes());
}

describe('instantiation and minimal rebuilds', () => {
  it('forward-chains tasks from sources and builds each once', () => {
    const dm = chain();
    expect(dm.status().dirty).toEqual(['index:', 'upper:a', 'upper:b', 'wrap:a', 'wrap:b']);
    const runs = drive(dm, pure);
    expect(ids(runs).sort()).toEqual(['index:', 'upper:a', 'upper:b', 'wrap:a', 'wrap:b']);
    expect(ids(runs).at(-1)).toBe('index:');
    expect(dm.status()).toMatchObject({ idle: true, dirty: [], running: [] });
    expect(dm.artefactState('site/index.html')).toBe('up_to_date');
  });

  it('rebuilds only what depends on the changed source', () => {
    const dm = chain();
    drive(dm, pure);
    const r = dm.setArtefact('src/a.txt', sha('a2'));
    expect(r.nowDirty).toEqual(['upper:a']);
    expect(dm.plan().components.map((c) => c.tasks.map((t) => `${t.id}=${t.state}`))).toEqual([
      ['upper:a=ready'],
      ['wrap:a=pending'],
      ['index:=pending'],
    ]);
    expect(ids(drive(dm, pure))).toEqual(['upper:a', 'wrap:a', 'index:']);
    expect(dm.setArtefact('src/a.txt', sha('a2')).nowDirty).toEqual([]);
    expect(drive(dm, pure)).toEqual([]);
  });

  it('a change undone before anything ran leaves nothing to do', () => {
    const dm = chain();
    drive(dm, pure);
    dm.setArtefact('src/a.txt', sha('a2'));
    dm.setArtefact('src/a.txt', sha('a1'));
    expect(dm.plan().components).toEqual([]);
    expect(dm.status().idle).toBe(true);
  });

  it('dispatches independent components in parallel, up to the concurrency', () => {
    const dm = chain();
    expect(dm.ready(8).map((t) => t.id)).toEqual(['upper:a', 'upper:b']);
    expect(dm.ready(1).map((t) => t.id)).toEqual(['upper:a']);
    const a = defined(dm.take(1)[0], 'a');
    expect(a.run).toBeGreaterThan(0);
    expect(a.inputHashes).toEqual({ 'src/a.txt': sha('a1') });
    expect(dm.ready(1)).toEqual([]);
    expect(dm.ready(2).map((t) => t.id)).toEqual(['upper:b']);
    expect(() => dm.started('wrap:a')).toThrowError(
      expect.objectContaining({ code: 'DEPGRAPH_TASK_NOT_READY' }),
    );
    expect(() => dm.started('nope:x')).toThrowError(
      expect.objectContaining({ code: 'DEPGRAPH_UNKNOWN_TASK' }),
    );
  });

  it('an optional input that appears later makes the task rebuild', () => {
    const dm = new DependencyManager();
    dm.addRule({
      id: 'cc',
      inputs: ['{stem}.c'],
      optionalInputs: ['{stem}.flags'],
      outputs: ['{stem}.o'],
    });
    dm.setArtefact('a.c', sha('c'));
    drive(dm, pure);
    expect(dm.setArtefact('a.flags', sha('-O2')).nowDirty).toEqual(['cc:a']);
    const run = defined(drive(dm, pure)[0], 'run');
    expect(run.task.inputs).toEqual(['a.c', 'a.flags']);
    expect(dm.deleteArtefact('a.flags').nowDirty).toEqual(['cc:a']);
  });

  it('a second required input without the placeholder binds through the first', () => {
    const dm = new DependencyManager();
    dm.addRule({ id: 'cc', inputs: ['{stem}.c', 'common.h'], outputs: ['{stem}.o'] });
    dm.setArtefact('a.c', sha('a'));
    dm.setArtefact('b.c', sha('b'));
    expect(dm.status().dirty).toEqual([]);
    expect(dm.setArtefact('common.h', sha('h')).added.sort()).toEqual(['cc:a', 'cc:b']);
    expect(dm.deleteArtefact('common.h').removed.sort()).toEqual(['cc:a', 'cc:b']);
  });

  it('stops chaining at the derivation depth limit and says so', () => {
    const dm = new DependencyManager({ maxDerivationDepth: 3 });
    const r1 = dm.addRule({ id: 'grow', inputs: ['{stem}.x'], outputs: ['{stem}.x.x'] });
    expect(r1.added).toEqual([]);
    const r = dm.setArtefact('a.x', sha('a'));
    expect(r.added).toEqual(['grow:a', 'grow:a.x', 'grow:a.x.x']);
    expect(r.warnings.map((w) => w.code)).toEqual(['DEPGRAPH_DERIVATION_TOO_DEEP']);
  });
});

describe('strings()', () => {
  it("gives a path's own string, hash and producer, from a restored graph too", () => {
    const dm = new DependencyManager();
    dm.addRule({ id: 'cc', inputs: ['src/{stem}.c'], outputs: ['obj/{stem}.o'] });
    dm.setArtefact('src/a.c', sha('a'));
    drive(dm, pure);
    const restored = DependencyManager.fromBytes(dm.exportBytes());
    for (const g of [dm, restored]) {
      expect(g.strings('src/a.c')).toEqual({ path: 'src/a.c', hash: sha('a') });
      expect(g.strings('obj/a.o')).toEqual({
        path: 'obj/a.o',
        hash: dm.exportState().artefacts['obj/a.o'],
        producer: 'cc:a',
      });
      expect(g.strings('src/b.c')).toBeUndefined();
    }
    dm.deleteArtefact('src/a.c');
    expect(dm.strings('src/a.c')).toEqual({ path: 'src/a.c' });
  });

  it('stringsAt() answers as strings() for each id of pathsInOrder(), undefined past them', () => {
    const g = restoredThreeObjects();
    const paths = g.pathsInOrder();
    expect([...paths].sort()).toEqual([
      'obj/a.o',
      'obj/b.o',
      'obj/c.o',
      'src/a.c',
      'src/b.c',
      'src/c.c',
    ]);
    for (const [id, path] of paths.entries()) {
      const at = g.stringsAt(id);
      const defined =
        at && Object.fromEntries(Object.entries(at).filter(([, v]) => v !== undefined));
      expect(defined).toEqual(g.strings(path));
    }
    for (const id of [-1, paths.length, 1.5, Number.NaN]) expect(g.stringsAt(id)).toBeUndefined();
    // Into an object of the caller's, each answer replacing the one before.
    const into = { path: '', hash: undefined, producer: undefined };
    for (const id of paths.keys()) {
      expect(g.stringsAt(id, into)).toBe(into);
      expect(into).toEqual(g.stringsAt(id));
    }
  });

  it('answers a path asked in id order, out of it, twice, or as another string of it alike', () => {
    const g = restoredThreeObjects();
    const paths = g.pathsInOrder();
    expect(paths.length).toBe(6);
    const producer = (p: string) => (p.startsWith('obj/') ? `cc:${p.slice(4, -2)}` : undefined);
    const copy = (p: string) => [...p].join(''); // equal, another string
    const asked = [
      ...paths, // in id order (a restart's records come so)
      ...[...paths].reverse(),
      ...paths.flatMap((p) => [p, p]),
      ...paths.map(copy),
      'src/z.c', // not held
      ...paths.slice(2),
    ];
    expect(asked.map((p) => g.producerOf(p))).toEqual(asked.map(producer));
    expect(asked.map((p) => g.strings(p)?.path)).toEqual(
      asked.map((p) => (p === 'src/z.c' ? undefined : p)),
    );
  });
});

describe('early cutoff', () => {
  it('an output rebuilt with the same hash does not rebuild its dependants', () => {
    const dm = new DependencyManager();
    // `strip` drops comments: its output ignores part of the input.
    dm.addRule({ id: 'strip', inputs: ['{stem}.src'], outputs: ['{stem}.code'] });
    dm.addRule({ id: 'compile', inputs: ['{stem}.code'], outputs: ['{stem}.bin'] });
    dm.addRule({ id: 'pack', inputs: ['{stem}.bin'], outputs: ['{stem}.pkg'] });
    const code = (t: TaskInstance) =>
      t.ruleId === 'strip'
        ? { outputs: { [defined(t.outputs[0], 't.outputs[0]')]: sha('constant code') } }
        : pure(t);
    dm.setArtefact('m.src', sha('v1 // comment'));
    drive(dm, code);
    dm.setArtefact('m.src', sha('v1 // other comment'));
    const runs = drive(dm, code);
    expect(ids(runs)).toEqual(['strip:m']);
    expect(defined(runs[0]?.result, 'runs[0].result').cutoff).toEqual(['m.code']);
    expect(defined(runs[0]?.result, 'runs[0].result').nowDirty).toEqual([]);
    expect(dm.artefactState('m.pkg')).toBe('up_to_date');
  });
});

describe('discovered dependencies', () => {
  it('a discovered header is tracked: changing it rebuilds, dropping it forgets it', () => {
    const dm = new DependencyManager();
    dm.addRule({ id: 'cc', inputs: ['{stem}.c'], outputs: ['{stem}.o'] });
    dm.setArtefact('a.c', sha('a'));
    dm.setArtefact('a.h', sha('h1'));
    const first = defined(
      drive(dm, (t) => ({ ...pure(t), discovered: ['a.h', 'missing.h'] }))[0],
      'first',
    );
    expect(first.task.inputs).toEqual(['a.c']);
    expect(defined(dm.toJSON().tasks[0], 'dm.toJSON().tasks[0]').discovered).toEqual([
      'a.h',
      'missing.h',
    ]);
    expect(dm.setArtefact('a.h', sha('h2')).nowDirty).toEqual(['cc:a']);
    const second = defined(drive(dm, pure)[0], 'second');
    expect(second.task.inputs).toEqual(['a.c', 'a.h']);
    // That run discovered nothing: a.h is no longer a dependency.
    expect(dm.setArtefact('a.h', sha('h3')).nowDirty).toEqual([]);
  });

  it('a discovered dependency that does not exist yet rebuilds the task when it appears', () => {
    const dm = new DependencyManager();
    dm.addRule({ id: 'cc', inputs: ['{stem}.c'], outputs: ['{stem}.o'] });
    dm.setArtefact('a.c', sha('a'));
    drive(dm, (t) => ({ ...pure(t), discovered: ['gen/config.h'] }));
    expect(dm.setArtefact('gen/config.h', sha('cfg')).nowDirty).toEqual(['cc:a']);
  });

  it('a discovered edge to a generated file orders the producer first', () => {
    const dm = new DependencyManager();
    dm.addRule({ id: 'cc', inputs: ['{stem}.c'], outputs: ['{stem}.o'] });
    dm.addRule({ id: 'gen', inputs: ['{stem}.idl'], outputs: ['{stem}.h'] });
    dm.setArtefact('a.c', sha('a'));
    dm.setArtefact('api.idl', sha('idl1'));
    const discover = (t: TaskInstance) =>
      t.ruleId === 'cc' ? { ...pure(t), discovered: ['api.h'] } : pure(t);
    drive(dm, discover, { concurrency: 1 });
    dm.setArtefact('api.idl', sha('idl2'));
    dm.setArtefact('a.c', sha('a2'));
    // Both dirty, but cc:a must wait for gen:api, whose output it reads: one run each.
    expect(dm.ready().map((t) => t.id)).toEqual(['gen:api']);
    expect(ids(drive(dm, discover))).toEqual(['gen:api', 'cc:a']);
  });

  it('a transient cycle from discovered deps is iterated, then disappears', () => {
    const dm = new DependencyManager({ passLimit: 4 });
    dm.addRule({ id: 'gen', inputs: ['{stem}.in'], outputs: ['{stem}.out'] });
    dm.setArtefact('a.in', sha('a'));
    dm.setArtefact('b.in', sha('b'));
    let cyclic = true;
    // Mid-edit, a reads b.out and b reads a.out; outputs ignore them, so it converges.
    const build = (t: TaskInstance) => ({
      outputs: { [defined(t.outputs[0], 't.outputs[0]')]: sha(`${t.inputHashes[`${t.stem}.in`]}`) },
      discovered: cyclic ? [t.stem === 'a' ? 'b.out' : 'a.out'] : [],
    });
    drive(dm, build);
    const json = dm.toJSON();
    expect(json.components).toEqual([
      { id: expect.any(Number), cyclic: true, tasks: ['gen:b', 'gen:a'], pass: 0, passLimit: 4 },
    ]);
    expect(dm.toDOT()).toContain('subgraph cluster_');
    expect(dm.status()).toMatchObject({ idle: true, dirty: [], nonConvergent: [] });
    cyclic = false;
    dm.setArtefact('a.in', sha('a2'));
    drive(dm, build);
    expect(dm.toJSON().components.map((c) => c.cyclic)).toEqual([false, false]);
    expect(dm.toDOT()).not.toContain('subgraph cluster_');
  });
});

describe('large cycles', () => {
  it('a 1100-task transient cycle is ordered without recursion and converges', () => {
    const dm = new DependencyManager({ passLimit: 4 });
    const n = 1100;
    const id = (i: number) => `r${String(i).padStart(4, '0')}`;
    dm.batch(() => {
      for (let i = 0; i < n; i++) {
        dm.addRule({
          id: id(i),
          inputs: ['seed.txt'],
          optionalInputs: [`o/${id((i + n - 1) % n)}`],
          outputs: [`o/${id(i)}`],
        });
      }
      dm.setArtefact('seed.txt', sha('s'));
    });
    const components = dm.toJSON().components;
    expect(components).toHaveLength(1);
    expect(defined(components[0], 'components[0]').tasks).toHaveLength(n);
    // Output depends on whether the previous link exists yet: stable from the second pass.
    const build = (t: TaskInstance) => ({
      outputs: {
        [defined(t.outputs[0], 't.outputs[0]')]: sha(
          `${t.inputHashes['seed.txt']}:${t.inputs.length}`,
        ),
      },
    });
    const runs = drive(dm, build, { maxRuns: 5 * n });
    expect(dm.status()).toMatchObject({ idle: true, dirty: [], nonConvergent: [] });
    expect(Math.max(...runs.map((r) => r.task.pass))).toBeLessThanOrEqual(3);
  });
});

describe('cycles that do not converge', () => {
  /** {stem}.state rewrites itself from its seed (a cycle of one), {stem}.done follows it. */
  const oscillator = () => {
    const dm = new DependencyManager({ passLimit: 3 });
    dm.addRule({
      id: 'osc',
      inputs: ['{stem}.seed'],
      optionalInputs: ['{stem}.state'],
      outputs: ['{stem}.state'],
    });
    dm.addRule({ id: 'after', inputs: ['{stem}.state'], outputs: ['{stem}.done'] });
    dm.setArtefact('x.seed', sha('s'));
    return dm;
  };
  const flip = (t: TaskInstance) => ({
    outputs: {
      [defined(t.outputs[0], 't.outputs[0]')]:
        t.inputHashes[defined(t.outputs[0], 't.outputs[0]')] === sha('0') ? sha('1') : sha('0'),
    },
  });

  it('stops at the pass limit and names the oscillating artefacts', () => {
    const dm = oscillator();
    const runs = drive(dm, flip);
    expect(runs.map((r) => `${r.task.pass}:${r.task.id}`)).toEqual([
      '1:osc:x',
      '2:osc:x',
      '3:osc:x',
    ]);
    const nc = defined(runs.at(-1)?.result, 'runs.at(-1).result').nonConvergent;
    expect(nc).toEqual([
      { component: expect.any(Number), tasks: ['osc:x'], artefacts: ['x.state'], passes: 3 },
    ]);
    const s = dm.status();
    expect(s.idle).toBe(true);
    expect(s.nonConvergent).toEqual(nc);
    expect(s.blocked).toEqual(['osc:x']);
    expect(dm.artefactState('x.state')).toBe('not_converging');
    expect(dm.artefactState('x.done')).toBe('dirty');
    // An edit starts a new round with a fresh pass count.
    dm.setArtefact('x.seed', sha('s2'));
    expect(drive(dm, flip)).toHaveLength(3);
  });

  it('a restored non-convergence keeps the cycle blocked until an edit', () => {
    const dm = oscillator();
    dm.setArtefact('y.seed', sha('s'));
    dm.setArtefact('y.state', sha('1'));
    const nc = drive(dm, (t) =>
      t.stem === 'x' ? flip(t) : { outputs: { 'y.state': sha('1') } },
    ).flatMap((r) => r.result?.nonConvergent ?? []);
    expect(nc.map((n) => n.tasks)).toEqual([['osc:x']]);

    // A restart: rules, hashes and traces come back; alone, they would give it 3 more passes.
    const dm2 = DependencyManager.fromState(dm.exportState(), { passLimit: 3 });
    expect(dm2.ready().map((t) => t.id)).toEqual(['osc:x']);
    // y's cycle converged and 'nope' has no producer: both ignored.
    dm2.restoreNonConvergence({ 'x.state': 3, 'y.state': 2, nope: 1 });
    expect(dm2.ready()).toEqual([]);
    const s = dm2.status();
    expect(s).toMatchObject({ idle: true, blocked: ['osc:x'] });
    expect(s.nonConvergent).toEqual([
      { component: expect.any(Number), tasks: ['osc:x'], artefacts: ['x.state'], passes: 3 },
    ]);
    expect(dm2.artefactState('x.state')).toBe('not_converging');
    expect(dm2.artefactState('y.state')).toBe('up_to_date');
    expect(() => dm2.restoreNonConvergence({ 'x.state': 0 })).toThrow(RangeError);
    // An edit starts a new round, with the full pass limit.
    dm2.setArtefact('x.seed', sha('s2'));
    expect(drive(dm2, flip).map((r) => `${r.task.pass}:${r.task.id}`)).toEqual([
      '1:osc:x',
      '2:osc:x',
      '3:osc:x',
    ]);
  });

  it('a restart in the middle of a round goes on with its pass (restorePass), unless an edit came since', () => {
    const dm = oscillator();
    const t = defined(dm.take(1)[0], 't');
    expect(t).toMatchObject({ id: 'osc:x', pass: 1 });
    dm.completed(t.id, { ...flip(t), run: t.run });
    const round = defined(dm.roundKey('osc:x'));
    expect(round).toMatch(/^[0-9a-f]{32}$/);
    expect(dm.roundKey('after:x')).toBeUndefined(); // not in a cycle
    const passes = (d: DependencyManager) => drive(d, flip).map((r) => r.task.pass);

    // Restored without its pass, the round would start again: 3 more passes.
    expect(passes(DependencyManager.fromState(dm.exportState(), { passLimit: 3 }))).toEqual([
      1, 2, 3,
    ]);
    const dm2 = DependencyManager.fromState(dm.exportState(), { passLimit: 3 });
    dm2.restorePass('osc:x', 1, round);
    expect(passes(dm2)).toEqual([2, 3]);
    expect(defined(dm2.status().nonConvergent[0], 'dm2.status().nonConvergent[0]').passes).toBe(3);

    // An edit outside the cycle since that run: a new round, from pass 1.
    const dm3 = DependencyManager.fromState(dm.exportState(), { passLimit: 3 });
    dm3.setArtefact('x.seed', sha('s2'));
    expect(dm3.roundKey('osc:x')).not.toBe(round);
    dm3.restorePass('osc:x', 1, round);
    expect(passes(dm3)).toEqual([1, 2, 3]);
    expect(() => dm3.restorePass('osc:x', 0, round)).toThrow(RangeError);
  });

  it('a rule may raise the pass limit of its cycle', () => {
    const dm = new DependencyManager({ passLimit: 2 });
    dm.addRule({
      id: 'osc',
      inputs: ['{stem}.seed'],
      optionalInputs: ['{stem}.state'],
      outputs: ['{stem}.state'],
      passLimit: 6,
    });
    dm.setArtefact('x.seed', sha('s'));
    expect(drive(dm, flip)).toHaveLength(6);
    expect(defined(dm.status().nonConvergent[0], 'dm.status().nonConvergent[0]').passes).toBe(6);
  });
});

describe('failures and cancellation', () => {
  it('a failed task blocks its dependants until one of its inputs changes', () => {
    const dm = chain();
    let failing = true;
    const build = (t: TaskInstance) =>
      t.id === 'upper:a' && failing ? { fail: 'exit 1' } : pure(t);
    const runs = drive(dm, build);
    expect(ids(runs).sort()).toEqual(['upper:a', 'upper:b', 'wrap:b']);
    const s = dm.status();
    expect(s).toMatchObject({ idle: true, failed: [{ task: 'upper:a', reason: 'exit 1' }] });
    // Its dependants are blocked too: their required input was never built.
    expect(s.blocked).toEqual(['index:', 'upper:a', 'wrap:a']);
    expect(dm.artefactState('out/a.upper')).toBe('failed');
    expect(defined(dm.why('out/a.upper').at(-1)).because).toContain('failed: exit 1');
    failing = false;
    dm.setArtefact('src/a.txt', sha('fixed'));
    expect(ids(drive(dm, build))).toEqual(['upper:a', 'wrap:a', 'index:']);
    expect(dm.status().failed).toEqual([]);
  });

  it('a change to an input of a running task cancels it; its late result is ignored', () => {
    const dm = chain();
    const all = dm.take(2);
    const a = defined(all[0], 'a');
    const b = defined(all[1], 'b');
    expect(a.id).toBe('upper:a');
    const r = dm.setArtefact('src/a.txt', sha('a2'));
    expect(r.cancel).toEqual(['upper:a']);
    expect(dm.cancelOnChange()).toEqual(['upper:a']);
    expect(dm.cancelOnChange()).toEqual([]);
    const late = dm.completed('upper:a', { ...pure(a), run: a.run });
    expect(late.stale).toBe(true);
    // A change elsewhere does not cancel the other run.
    expect(dm.setArtefact('src/unrelated.txt', sha('u')).cancel).toEqual([]);
    dm.completed(b.id, { ...pure(b), run: b.run });
    const again = defined(dm.take(1)[0], 'again');
    expect(again).toMatchObject({ id: 'upper:a', inputHashes: { 'src/a.txt': sha('a2') } });
    expect(dm.completed(again.id, { ...pure(again), run: again.run - 1 }).stale).toBe(true);
    expect(dm.completed(again.id, { ...pure(again), run: again.run }).stale).toBe(false);
  });

  it('a bad report changes nothing; undeclared outputs are ignored with a warning', () => {
    const dm = chain();
    const a = defined(dm.take(1)[0], 'a');
    expect(() => dm.completed(a.id, { outputs: { 'out/a.upper': '' }, run: a.run })).toThrowError(
      expect.objectContaining({ code: 'DEPGRAPH_INVALID_HASH' }),
    );
    expect(dm.status().running).toEqual(['upper:a']);
    const r = dm.completed(a.id, {
      outputs: { 'out/a.upper': sha('A'), 'out/stray.tmp': sha('x') },
      run: a.run,
    });
    expect(r.warnings.map((w) => [w.code, w.paths])).toEqual([
      ['DEPGRAPH_UNDECLARED_OUTPUT', ['out/stray.tmp']],
    ]);
    expect(dm.artefactState('out/stray.tmp')).toBe('missing');
    expect(dm.artefactState('out/a.upper')).toBe('up_to_date');
  });

  it('cancelled() returns a run to the plan', () => {
    const dm = chain();
    const a = defined(dm.take(1)[0], 'a');
    expect(dm.cancelled(a.id, a.run).stale).toBe(false);
    expect(dm.ready().map((t) => t.id)).toEqual(['upper:b', 'upper:a']);
  });

  it('cancelledByRequest() holds the task until an input changes or it is released', () => {
    const dm = chain();
    const a = dm.started('upper:b');
    expect(dm.cancelledByRequest(a.id, a.run).stale).toBe(false);
    expect(dm.artefactState('out/b.upper')).toBe('cancelled');
    expect(dm.status().blocked).toContain('upper:b');
    // Another change (an unrelated source) plans others, never the held task.
    dm.setArtefact('src/c.txt', sha('c1'));
    expect(
      dm
        .ready()
        .map((t) => t.id)
        .sort(),
    ).toEqual(['upper:a', 'upper:c']);
    // Its output written from outside (the killed build's partial bytes): still held.
    dm.setArtefact('out/b.upper', sha('partial'));
    expect(dm.held('upper:b')).toBe(true);
    expect(dm.ready().map((t) => t.id)).not.toContain('upper:b');
    // Its input changes: planned again.
    dm.setArtefact('src/b.txt', sha('b2'));
    expect(dm.held('upper:b')).toBe(false);
    expect(dm.ready().map((t) => t.id)).toContain('upper:b');
    // Held again, then released (a rebuild asked for).
    const b = dm.started('upper:b');
    dm.cancelledByRequest(b.id, b.run);
    expect(dm.ready().map((t) => t.id)).not.toContain('upper:b');
    dm.release('upper:b');
    expect(dm.ready().map((t) => t.id)).toContain('upper:b');
  });

  it('restoreHolds() holds dirty tasks only, and a cancel of an old run holds nothing', () => {
    const dm = chain();
    drive(dm, pure);
    dm.setArtefact('src/a.txt', sha('a2'));
    const stale = defined(dm.take(1)[0], 'a');
    dm.cancelled(stale.id, stale.run);
    expect(dm.cancelledByRequest(stale.id, stale.run).stale).toBe(true);
    expect(dm.held(stale.id)).toBe(false);
    dm.restoreHolds(['upper:a', 'upper:b', 'no:such']);
    expect(dm.held('upper:a')).toBe(true);
    const c = new DependencyManager();
    c.addRule({ id: 'upper', inputs: ['src/{stem}.txt'], outputs: ['out/{stem}.upper'] });
    c.setArtefact('src/a.txt', sha('a3'));
    c.restoreHolds(['upper:a'], (t) => t.inputHashes['src/a.txt'] === sha('a2'));
    expect(c.held('upper:a')).toBe(false);
    c.restoreHolds(['upper:a'], (t) => t.inputHashes['src/a.txt'] === sha('a3'));
    expect(c.held('upper:a')).toBe(true);
    expect(dm.held('upper:b')).toBe(false); // up to date: nothing to hold
    expect(dm.artefactState('out/b.upper')).toBe('up_to_date');
    expect(dm.ready()).toEqual([]);
    dm.forget('upper:a');
    expect(dm.ready().map((t) => t.id)).toEqual(['upper:a']);
  });

  it('a cancelled run in a cycle does not count as a pass', () => {
    const dm = new DependencyManager({ passLimit: 3 });
    dm.addRule({
      id: 'pdflatex',
      inputs: ['{stem}.tex'],
      optionalInputs: ['{stem}.aux'],
      outputs: ['{stem}.pdf', '{stem}.aux'],
    });
    dm.setArtefact('doc.tex', sha('t'));
    for (let i = 0; i < 5; i++) {
      const t = defined(dm.take()[0], 't');
      expect(t).toMatchObject({ id: 'pdflatex:doc', pass: 1 });
      const r = dm.cancelled(t.id, t.run);
      expect(r.stale).toBe(false);
    }
    expect(dm.status()).toMatchObject({ nonConvergent: [], blocked: [] });
    expect(dm.artefactState('doc.aux')).not.toBe('not_converging');
    expect(dm.ready().map((t) => t.id)).toEqual(['pdflatex:doc']);
  });

  it('a cancelled run after a completed pass is retried in the pass it was started in', () => {
    const dm = new DependencyManager({ passLimit: 2 });
    dm.addRule({
      id: 'pdflatex',
      inputs: ['{stem}.tex'],
      optionalInputs: ['{stem}.aux'],
      outputs: ['{stem}.aux'],
    });
    dm.setArtefact('doc.tex', sha('t'));
    const p1 = defined(dm.take()[0], 'p1');
    dm.completed(p1.id, { outputs: { 'doc.aux': sha('a1') }, run: p1.run });
    const p2 = defined(dm.take()[0], 'p2');
    expect(p2.pass).toBe(2);
    dm.cancelled(p2.id, p2.run);
    const again = defined(dm.take()[0], 'again');
    expect(again.pass).toBe(2);
    const done = dm.completed(again.id, { outputs: { 'doc.aux': sha('a1') }, run: again.run });
    expect(done.nonConvergent).toEqual([]);
    expect(dm.status()).toMatchObject({ idle: true, nonConvergent: [] });
    expect(dm.artefactState('doc.aux')).toBe('up_to_date');
  });
});

describe('structure changes', () => {
  it('retiring a rule removes its tasks and orphans their existing outputs', () => {
    const dm = chain();
    drive(dm, pure);
    dm.setArtefact('src/a.txt', sha('a2'));
    const running = defined(dm.take(1)[0], 'running');
    expect(running.id).toBe('upper:a');
    const r = dm.removeRule('upper');
    expect(r.removed.sort()).toEqual(['upper:a', 'upper:b']);
    expect(r.cancel).toEqual(['upper:a']);
    expect(r.orphaned.sort()).toEqual(['out/a.upper', 'out/b.upper']);
    // The orphans still exist, so wrap:* stay; they are plain files now.
    expect(dm.artefactState('out/a.upper')).toBe('source');
    expect(dm.completed('upper:a', { ...pure(running), run: running.run }).stale).toBe(true);
    // The chef comes back with the same rule: traces are kept, only upper:a rebuilds.
    const back = dm.addRule({
      id: 'upper',
      inputs: ['src/{stem}.txt'],
      outputs: ['out/{stem}.upper'],
    });
    expect(back.added.sort()).toEqual(['upper:a', 'upper:b']);
    expect(back.nowDirty).toEqual(['upper:a']);
  });

  it('deleting a source removes the tasks that required it, and what needed their outputs', () => {
    const dm = chain();
    const r = dm.deleteArtefact('src/a.txt');
    expect(r.removed).toEqual(['upper:a', 'wrap:a', 'index:']);
    expect(dm.artefactState('out/a.html')).toBe('missing');
    expect(dm.setArtefact('src/a.txt', sha('a')).added).toEqual(['upper:a', 'wrap:a', 'index:']);
  });

  it('a deleted output makes its producer dirty again', () => {
    const dm = chain();
    drive(dm, pure);
    // index: read out/b.html; once wrap:b rebuilds it with the same hash, index: is clean again.
    expect(dm.deleteArtefact('out/b.html').nowDirty).toEqual(['index:', 'wrap:b']);
    expect(defined(dm.why('out/b.html')[0]).because).toMatch(
      /^wrap:b's output out\/b.html differs from what it last built/,
    );
    expect(ids(drive(dm, pure))).toEqual(['wrap:b']);
  });

  it('two rules claiming one output: the lowest rule id wins, with a warning', () => {
    const dm = new DependencyManager();
    dm.setArtefact('a.md', sha('md'));
    dm.addRule({ id: 'pandoc', inputs: ['{stem}.md'], outputs: ['{stem}.html'] });
    const r = dm.addRule({ id: 'markdown', inputs: ['{stem}.md'], outputs: ['{stem}.html'] });
    expect(r.added).toEqual(['markdown:a']);
    expect(r.removed).toEqual(['pandoc:a']);
    expect(r.warnings.map((w) => w.code)).toEqual(['DEPGRAPH_OUTPUT_CONFLICT']);
    expect(dm.producerOf('a.html')).toBe('markdown:a');
    const again = dm.addRule({ id: 'zz', inputs: ['{stem}.md'], outputs: ['{stem}.html'] });
    expect(again.added).toEqual([]);
    expect(defined(again.warnings[0], 'again.warnings[0]').tasks).toEqual(['markdown:a', 'zz:a']);
    const gone = dm.removeRule('markdown');
    expect(gone.added).toEqual(['pandoc:a']);
    expect(dm.producerOf('a.html')).toBe('pandoc:a');
  });

  it('re-declaring a changed rule drops its traces; an identical one changes nothing', () => {
    const dm = chain();
    drive(dm, pure);
    const same = dm.addRule({
      id: 'wrap',
      inputs: ['out/{stem}.upper'],
      outputs: ['out/{stem}.html'],
    });
    expect(same).toMatchObject({ added: [], removed: [], nowDirty: [] });
    const changed = dm.addRule({
      id: 'wrap',
      inputs: ['out/{stem}.upper'],
      outputs: ['out/{stem}.html'],
      meta: { cmd: 'v2' },
    });
    expect(changed.nowDirty).toEqual(['wrap:a', 'wrap:b']);
  });
});

describe('restore, explain and export', () => {
  it('exportState + fromState rebuild the same graph with nothing to do', () => {
    const dm = chain();
    drive(dm, (t) => ({ ...pure(t), discovered: ['include/common.h'] }));
    dm.setArtefact('include/common.h', sha('h'));
    const restored = DependencyManager.fromState(dm.exportState());
    expect(restored.toJSON()).toEqual(dm.toJSON());
    expect(restored.status().dirty).toEqual(dm.status().dirty);
    expect(ids(drive(restored, pure)).sort()).toEqual(ids(drive(dm, pure)).sort());
    expect(restored.toJSON()).toEqual(dm.toJSON());
  });

  it('restoring traces before rules and artefacts gives the same result', () => {
    const dm = chain();
    drive(dm, pure);
    const state = dm.exportState();
    const other = new DependencyManager();
    for (const [id, trace] of Object.entries(state.traces)) other.restoreTrace(id, trace);
    for (const rule of state.rules) other.addRule(rule);
    for (const [path, hash] of Object.entries(state.artefacts)) other.setArtefact(path, hash);
    expect(other.status().dirty).toEqual([]);
    expect(other.toJSON()).toEqual(dm.toJSON());
  });

  it('why() walks from the changed source through every rebuilt step', () => {
    const dm = chain();
    drive(dm, pure);
    dm.setArtefact('src/b.txt', sha('b2'));
    expect(dm.why('site/index.html').map((s) => s.artefact)).toEqual([
      'src/b.txt',
      'out/b.upper',
      'out/b.html',
      'site/index.html',
    ]);
    expect(dm.why('src/b.txt')).toEqual([]);
    expect(dm.why('out/a.html')).toEqual([]);
    expect(dm.why('no/such')).toEqual([]);
  });

  it('DOT draws tasks, artefacts and dashed optional edges; the plan DOT shows only pending work', () => {
    const dm = chain();
    drive(dm, pure);
    dm.setArtefact('src/a.txt', sha('a2'));
    const full = dm.toDOT();
    expect(full).toMatch(/^digraph depgraph \{/);
    expect(full).toContain('"t:upper:b" [label="upper:b", shape=box, fillcolor=palegreen];');
    expect(full).toContain('"a:src/a.txt" -> "t:upper:a";');
    const pending = dm.toDOT({ plan: true });
    expect(pending).toContain('"t:upper:a"');
    expect(pending).not.toContain('"t:upper:b"');
  });

  it('rejects paths outside the project and empty hashes with stable codes', () => {
    const dm = new DependencyManager();
    expect(() => dm.setArtefact('../x', sha('x'))).toThrowError(
      expect.objectContaining({ code: 'DEPGRAPH_INVALID_PATH' }),
    );
    expect(() => dm.setArtefact('/abs', sha('x'))).toThrowError(
      expect.objectContaining({ code: 'DEPGRAPH_INVALID_PATH' }),
    );
    expect(() => dm.setArtefact('a//b', sha('x'))).toThrowError(
      expect.objectContaining({ code: 'DEPGRAPH_INVALID_PATH' }),
    );
    expect(() => dm.setArtefact('a', '')).toThrowError(
      expect.objectContaining({ code: 'DEPGRAPH_INVALID_HASH' }),
    );
    expect(() => new DependencyManager({ passLimit: 0 })).toThrow(RangeError);
  });

  it('forget() makes a task rebuild; producerOf names producers only', () => {
    const dm = chain();
    drive(dm, pure);
    expect(dm.producerOf('out/a.upper')).toBe('upper:a');
    expect(dm.producerOf('src/a.txt')).toBeUndefined();
    expect(dm.forget('upper:a').nowDirty).toEqual(['upper:a']);
    expect(ids(drive(dm, pure))).toEqual(['upper:a']);
  });
});
