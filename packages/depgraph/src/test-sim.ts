import { defined } from '@computepods/testkit';
import fc from 'fast-check';
import { DependencyManager } from './dependency-manager.js';
import { type Contents, type Model, simulate } from './test-model.js';
import type { ChangeResult, TaskInstance } from './types.js';

export type Edit =
  | { readonly kind: 'modify'; readonly source: number }
  | { readonly kind: 'delete'; readonly source: number }
  | { readonly kind: 'toggleRule'; readonly rule: number }
  | { readonly kind: 'restart' };

/**
 * Random edits: sources modified (most often) or deleted, rules switched off and back on and,
 * with `restart`, the manager restarted from its exported state.
 */
export function editArb(opts: { readonly restart?: boolean } = {}): fc.Arbitrary<Edit> {
  const kinds: Array<fc.WeightedArbitrary<Edit>> = [
    { weight: 4, arbitrary: fc.record({ kind: fc.constant('modify' as const), source: fc.nat() }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('delete' as const), source: fc.nat() }) },
    {
      weight: 1,
      arbitrary: fc.record({ kind: fc.constant('toggleRule' as const), rule: fc.nat() }),
    },
  ];
  if (opts.restart) kinds.push({ weight: 1, arbitrary: fc.constant({ kind: 'restart' as const }) });
  return fc.oneof(...kinds);
}

/** Edits, each followed by `runs` completions before the next (-1: until nothing is left). */
export function stepsOf(
  edit: fc.Arbitrary<Edit>,
  runs: { readonly min: number; readonly max: number },
  maxLength: number,
): fc.Arbitrary<Array<{ edit: Edit; runs: number }>> {
  return fc.array(fc.record({ edit, runs: fc.integer(runs) }), { maxLength });
}

/** The order in which Sim picks among the runs ready to complete. */
export const choicesArb: fc.Arbitrary<number[]> = fc.array(fc.nat({ max: 7 }), {
  minLength: 1,
  maxLength: 8,
});

interface LastRun {
  readonly inputs: Record<string, string>;
  readonly discovered: readonly string[];
  readonly outputs: Record<string, string>;
}

/**
 * Plays a model against a DependencyManager like MajorDomo would, with runs in flight while
 * edits arrive, and checks on every dispatch what it can know independently of the manager:
 * a task that ran before starts again only if one of its inputs or outputs changed since.
 */
export class Sim {
  dm: DependencyManager;
  readonly inFlight: TaskInstance[] = [];
  readonly violations: string[] = [];
  /** Runs since the last edit: task id → passes it ran in, and whether its component is a cycle. */
  segment = new Map<string, { passes: number[]; cyclic: boolean }>();
  readonly allRuns: TaskInstance[] = [];
  private readonly versions: number[];
  private readonly deleted = new Set<number>();
  private readonly retired = new Set<number>();
  private readonly last = new Map<string, LastRun>();
  private choice = 0;
  /** Called after each edit, dispatch and completed run (a test looks at the graph there). */
  onStep: () => void = () => {};

  constructor(
    readonly model: Model,
    readonly contents: Contents,
    readonly passLimit: number,
    readonly concurrency: number,
    private readonly choices: readonly number[],
  ) {
    this.dm = new DependencyManager({ passLimit });
    this.versions = model.sources.map(() => 0);
    for (const rule of model.rules) this.dm.addRule(rule.spec);
    model.sources.forEach((path) => {
      this.dm.setArtefact(path, contents.source(path, 0));
    });
  }

  rules() {
    return this.model.rules.filter((r) => !this.retired.has(r.index)).map((r) => r.spec);
  }

  apply(edit: Edit): void {
    this.segment = new Map();
    const { model, dm } = this;
    let r: ChangeResult | undefined;
    if (edit.kind === 'modify') {
      const i = edit.source % model.sources.length;
      this.deleted.delete(i);
      const source = defined(model.sources[i], 'model.sources[i]');
      const version = defined(this.versions[i], 'this.versions[i]') + 1;
      this.versions[i] = version;
      r = dm.setArtefact(source, this.contents.source(source, version));
    } else if (edit.kind === 'delete') {
      const i = edit.source % model.sources.length;
      this.deleted.add(i);
      r = dm.deleteArtefact(defined(model.sources[i], 'model.sources[i]'));
    } else if (edit.kind === 'toggleRule') {
      const rule = defined(model.rules[edit.rule % model.rules.length]);
      if (this.retired.delete(rule.index)) r = dm.addRule(rule.spec);
      else {
        this.retired.add(rule.index);
        r = dm.removeRule(rule.spec.id);
      }
    } else {
      // MajorDomo restarts: the graph comes back from persisted state; runs in flight are lost.
      this.dm = DependencyManager.fromState(dm.exportState(), { passLimit: this.passLimit });
      this.inFlight.length = 0;
    }
    if (r) this.drop(r.cancel);
    this.onStep();
  }

  /** Completes up to `n` runs (all of them, until quiescent, when n < 0). */
  complete(n: number, maxRuns = 5_000): void {
    for (let done = 0; n < 0 || done < n; done++) {
      this.dispatch();
      if (!this.inFlight.length) return;
      if (this.allRuns.length > maxRuns) throw new Error('the build does not stop');
      const i =
        (this.choices[this.choice++ % Math.max(1, this.choices.length)] ?? 0) %
        this.inFlight.length;
      const task = defined(this.inFlight.splice(i, 1)[0], 'task');
      // A dependency first discovered now was read before this run wrote anything.
      const before = this.dm.exportState().artefacts;
      const out = simulate(this.model, this.contents, task, (p) => before[p]);
      const r = this.dm.completed(task.id, { ...out, run: task.run });
      if (!r.stale) {
        const inputs = { ...task.inputHashes };
        for (const d of out.discovered) {
          const h = before[d];
          if (!(d in inputs) && h !== undefined) inputs[d] = h;
        }
        this.last.set(task.id, { inputs, discovered: out.discovered, outputs: out.outputs });
      }
      this.drop(r.cancel);
      this.onStep();
    }
  }

  private dispatch(): void {
    for (const t of this.dm.take(this.concurrency)) {
      this.onStep();
      this.check(t);
      this.inFlight.push(t);
      this.allRuns.push(t);
      const seg = this.segment.get(t.id) ?? { passes: [], cyclic: t.cyclic };
      seg.passes.push(t.pass);
      this.segment.set(t.id, seg);
    }
  }

  private check(t: TaskInstance): void {
    const prev = this.last.get(t.id);
    if (!prev) return;
    const now = this.dm.exportState().artefacts;
    const paths = new Set([...Object.keys(prev.inputs), ...prev.discovered, ...t.inputs]);
    const inputChanged = [...paths].some((p) => now[p] !== prev.inputs[p]);
    const outputChanged = Object.entries(prev.outputs).some(([o, h]) => now[o] !== h);
    if (!inputChanged && !outputChanged) {
      this.violations.push(
        `${t.id} started (pass ${t.pass}) though nothing it read or wrote changed`,
      );
    }
  }

  private drop(ids: readonly string[]): void {
    for (const id of ids) {
      const i = this.inFlight.findIndex((t) => t.id === id);
      if (i >= 0) this.inFlight.splice(i, 1);
    }
  }
}

/** A fresh manager given only the final rules and the files that no task produces. */
export function fromScratch(sim: Sim): DependencyManager {
  const dm = new DependencyManager({ passLimit: sim.passLimit });
  for (const rule of sim.rules()) dm.addRule(rule);
  for (const [path, hash] of Object.entries(sim.dm.exportState().artefacts)) {
    if (sim.dm.producerOf(path) === undefined) dm.setArtefact(path, hash);
  }
  const runs: TaskInstance[] = [];
  for (;;) {
    const batch = dm.take();
    if (!batch.length) break;
    for (const t of batch) {
      runs.push(t);
      if (runs.length > 5_000) throw new Error('scratch build does not stop');
      const disk = dm.exportState().artefacts;
      dm.completed(t.id, { ...simulate(sim.model, sim.contents, t, (p) => disk[p]), run: t.run });
    }
  }
  return dm;
}

/** Tasks in a cycle that did not converge, or downstream of one. */
function tainted(dm: DependencyManager): Set<string> {
  const json = dm.toJSON();
  const out = new Set(dm.status().nonConvergent.flatMap((n) => n.tasks));
  const consumers = new Map<string, string[]>();
  for (const t of json.tasks) {
    for (const p of [...t.inputs, ...t.optionalInputs, ...t.discovered]) {
      consumers.set(p, [...(consumers.get(p) ?? []), t.id]);
    }
  }
  const byId = new Map(json.tasks.map((t) => [t.id, t]));
  const stack = [...out];
  for (let id = stack.pop(); id !== undefined; id = stack.pop()) {
    for (const o of defined(byId.get(id), `task ${id}`).outputs) {
      for (const c of consumers.get(o) ?? []) {
        if (!out.has(c)) {
          out.add(c);
          stack.push(c);
        }
      }
    }
  }
  return out;
}

/**
 * What must agree between two managers. Downstream of a cycle that does not converge nothing is
 * specified (it is blocked), and which tasks are downstream depends on what they discovered in
 * their last run, which may differ: tasks downstream in either manager are left out. For all
 * others: the same tasks, components, hashes, and nothing left dirty.
 */
export function outcomes(a: DependencyManager, b: DependencyManager) {
  const skip = new Set([...tainted(a), ...tainted(b)]);
  const summary = (dm: DependencyManager) => {
    const json = dm.toJSON();
    const compOf = new Map(json.components.flatMap((c) => c.tasks.map((t) => [t, c] as const)));
    const hashes: Record<string, string | null> = {};
    for (const x of json.artefacts) {
      if (x.producer === null || !skip.has(x.producer)) hashes[x.path] = x.hash;
    }
    return {
      tasks: json.tasks.map((t) => t.id),
      components: json.tasks
        .filter((t) => !skip.has(t.id))
        .map((t) => {
          const comp = defined(compOf.get(t.id), `component of ${t.id}`);
          return {
            task: t.id,
            cyclic: comp.cyclic,
            with: comp.tasks.filter((x) => !skip.has(x)).sort(),
          };
        }),
      hashes,
      dirty: dm.status().dirty.filter((id) => !skip.has(id)),
    };
  };
  return [summary(a), summary(b)] as const;
}
