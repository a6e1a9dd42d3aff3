import { alg, Graph as Digraph } from '@dagrejs/graphlib';
import { at, GraphInvariantError, got, int32At } from './checked.js';
import { Graph, type GraphListener } from './graph.js';
import { tarjan } from './tarjan.js';
import type { Run, Task } from './task.js';
import { Touched, TrackedRegion } from './touched.js';
import type { NonConvergence } from './types.js';

/**
 * Components (SCCs) of the task graph and the work region over them.
 *
 * The region holds every component with a dirty or running task and everything downstream of one
 * (it is closed downwards). `waiting[c]` counts task-level edges into c from other region
 * components; c may dispatch only at zero, so nothing runs before all it transitively depends on
 * is settled, and no task runs twice because an upstream task finished late. A component with
 * nothing dirty or running at zero leaves the region, which lets its dependants go: that is how
 * early cutoff collapses the region without running anything.
 *
 * Within a component, a round runs passes: in pass p a task runs when it is dirty and has not run
 * in pass p, one at a time, in a fixed order (dependencies first, ties by id). When a pass ends
 * with tasks still dirty the next pass starts, up to the component's pass limit.
 *
 * Structure changes keep a topological rank by Pearce-Kelly reordering; a change that makes or
 * breaks a cycle marks everything stale and the next query recomputes (Tarjan, O(V+E)).
 */
export class Scheduler implements GraphListener {
  /** The graph it schedules, which reports its structural changes here. */
  readonly graph: Graph;
  stale = true;
  /** By component number (`Task.comp`); a removed task's stays, empty, until the next recompute. */
  comps: Component[] = [];
  /** What changed for DependencyManager.takeTouched (touched.ts). */
  readonly touched = new Touched();
  readonly region: Set<number> = new TrackedRegion(this.touched);
  readonly dispatchable = new Set<number>();
  readonly dirty = new Set<Task>();
  readonly running = new Set<Task>();
  newlyNonConvergent: NonConvergence[] = [];
  private readonly work = new Set<number>();
  private nextRank = 0;

  constructor(
    private readonly defaultPassLimit: number,
    maxDerivationDepth: number,
  ) {
    this.graph = new Graph(this, maxDerivationDepth);
  }

  /** Component `c`, which a live task or the region names. */
  comp(c: number): Component {
    const comp = this.comps[c];
    if (comp === undefined) throw new GraphInvariantError('component', c);
    return comp;
  }

  setDirty(t: Task, dirty: boolean): void {
    if (t.dirty === dirty) return;
    t.dirty = dirty;
    this.touched.task(t);
    if (dirty) this.dirty.add(t);
    else this.dirty.delete(t);
    if (this.stale || t.comp < 0) return;
    this.comp(t.comp).dirtyCount += dirty ? 1 : -1;
    this.work.add(t.comp);
  }

  setRunning(t: Task, run: Run | undefined): void {
    const was = t.running !== undefined;
    t.running = run;
    this.touched.task(t);
    if (was === (run !== undefined)) return;
    if (run) this.running.add(t);
    else this.running.delete(t);
    if (this.stale || t.comp < 0) return;
    this.comp(t.comp).runningCount += run ? 1 : -1;
    this.work.add(t.comp);
  }

  /**
   * Ends a run that produced nothing (cancelled, lost): it does not count as a pass, so the task
   * is again a candidate of the pass it was started in. A round reset since then already cleared
   * its pass and stays.
   */
  cancelRun(t: Task): void {
    const run = t.running;
    if (run && t.runPass === run.pass) t.runPass = run.prevRunPass;
    this.setRunning(t, undefined);
  }

  touch(t: Task): void {
    if (!this.stale && t.comp >= 0) this.work.add(t.comp);
  }

  /** Starts the task's component on a new round: pass counts and non-convergence are forgotten. */
  resetRound(t: Task): void {
    const c = t.comp;
    const members = this.comps[c]?.members;
    const ids = members?.includes(t.idx) ? members : [t.idx];
    for (const idx of ids) {
      const m = this.graph.tasks[idx];
      if (!m) continue;
      m.runPass = 0;
      m.nc = undefined;
      this.touched.task(m);
    }
    if (this.stale || c < 0) return;
    const comp = this.comp(c);
    comp.pass = 0;
    comp.changed = undefined;
    this.work.add(c);
  }

  noteChanged(t: Task, output: number): void {
    if (this.stale || t.comp < 0) return;
    const comp = this.comp(t.comp);
    comp.changed ??= new Set();
    comp.changed.add(output);
  }

  passLimit(c: number): number {
    let limit = 0;
    for (const idx of this.comp(c).members) {
      limit = Math.max(limit, this.graph.task(idx).rule.spec.passLimit ?? this.defaultPassLimit);
    }
    return limit || this.defaultPassLimit;
  }

  runnable(t: Task): boolean {
    if (!t.dirty || t.running || t.failed !== undefined || t.held || t.nc) return false;
    const hash = this.graph.hash;
    for (const p of t.required) if (hash[p] === undefined) return false;
    return true;
  }

  /** The task the component would start next, if any. */
  candidate(c: number): Task | undefined {
    const p = this.comp(c).pass;
    for (const idx of this.ordered(c)) {
      const t = this.graph.task(idx);
      if (t.runPass < p && this.runnable(t)) return t;
    }
    return undefined;
  }

  flush(): void {
    for (const c of this.work) {
      // A Set iterates what is added while iterating, and a deleted entry is not visited again.
      this.work.delete(c);
      this.advance(c);
    }
  }

  private advance(c: number): void {
    if (this.stale) return;
    const comp = this.comp(c);
    if (comp.members.length === 0) return;
    const active = comp.dirtyCount > 0 || comp.runningCount > 0;
    if (!this.region.has(c)) {
      if (!active) return;
      this.addToRegion(c, 0);
    }
    if (comp.waiting > 0 || comp.runningCount > 0) {
      this.dispatchable.delete(c);
      return;
    }
    if (!active) {
      this.settle(c);
      return;
    }
    if (comp.pass === 0) comp.pass = 1;
    let next = this.candidate(c);
    if (!next && comp.members.some((i) => this.runnable(this.graph.task(i)))) {
      // Every runnable task already ran in this pass and something is dirty again.
      if (comp.pass >= this.passLimit(c)) this.markNonConvergent(c);
      else {
        comp.pass++;
        comp.changed = undefined;
        next = this.candidate(c);
      }
    }
    if (next) this.dispatchable.add(c);
    else this.dispatchable.delete(c);
  }

  private addToRegion(c: number, waiting: number): void {
    this.region.add(c);
    this.comp(c).waiting = waiting;
    this.work.add(c);
    const stack = [c];
    for (let top = stack.pop(); top !== undefined; top = stack.pop()) {
      this.forEachOut(top, (d) => {
        const down = this.comp(d);
        if (!this.region.has(d)) {
          this.region.add(d);
          down.waiting = 0;
          stack.push(d);
        }
        down.waiting++;
        this.work.add(d);
      });
    }
  }

  private settle(c: number): void {
    this.region.delete(c);
    this.dispatchable.delete(c);
    const comp = this.comp(c);
    comp.waiting = 0;
    comp.pass = 0;
    comp.changed = undefined;
    for (const idx of comp.members) this.graph.task(idx).runPass = 0;
    this.releaseDownstream(c);
  }

  private releaseDownstream(c: number): void {
    this.forEachOut(c, (d) => {
      if (!this.region.has(d)) return;
      this.comp(d).waiting--;
      this.work.add(d);
    });
  }

  private markNonConvergent(c: number): void {
    const g = this.graph;
    const comp = this.comp(c);
    const report: NonConvergence = {
      component: c,
      tasks: this.ordered(c).map((i) => g.task(i).id),
      artefacts: [...(comp.changed ?? [])].map((p) => g.path(p)).sort(),
      passes: comp.pass,
    };
    for (const idx of comp.members) g.task(idx).nc = report;
    this.touched.comp(c);
    this.newlyNonConvergent.push(report);
  }

  /** Marks a cycle as not converging again after a restart (see restoreNonConvergence). */
  restoreNonConvergent(c: number, changed: number[], passes: number): void {
    const g = this.graph;
    const comp = this.comp(c);
    if (!comp.cyclic || !comp.members.some((idx) => g.task(idx).dirty)) return;
    const report: NonConvergence = {
      component: c,
      tasks: this.ordered(c).map((i) => g.task(i).id),
      artefacts: changed.map((p) => g.path(p)).sort(),
      passes,
    };
    for (const idx of comp.members) g.task(idx).nc = report;
    this.touched.comp(c);
    comp.pass = passes;
    comp.changed = new Set(changed);
    this.work.add(c);
  }

  /** A task ran in `pass` of its component's current round before a restart (restorePass). */
  restorePass(t: Task, pass: number): void {
    t.runPass = Math.max(t.runPass, pass);
    if (this.stale || t.comp < 0) return;
    const comp = this.comp(t.comp);
    comp.pass = Math.max(comp.pass, t.runPass);
    this.work.add(t.comp);
  }

  /** Calls `fn` once per task-level edge from component c to another component. */
  forEachOut(c: number, fn: (d: number) => void): void {
    const g = this.graph;
    const { producer } = g;
    for (const idx of this.comp(c).members) {
      for (const o of g.task(idx).outputs) {
        if (producer[o] !== idx) continue;
        const list = g.readers(o);
        if (!list) continue;
        for (const v of list) {
          const d = g.task(v).comp;
          if (d !== c) fn(d);
        }
      }
    }
  }

  forEachIn(c: number, fn: (u: number) => void): void {
    const g = this.graph;
    for (const idx of this.comp(c).members) {
      for (const p of g.task(idx).inputs) {
        const prod = g.producerOf(p);
        if (prod < 0) continue;
        const u = g.task(prod).comp;
        if (u !== c) fn(u);
      }
    }
  }

  taskAdded(t: Task): void {
    this.touched.task(t);
    if (this.stale) return;
    const c = this.comps.length;
    t.comp = c;
    const comp = new Component([t.idx], this.nextRank++, this.selfLoop(t), true);
    comp.dirtyCount = t.dirty ? 1 : 0;
    this.comps.push(comp);
    const downstream = new Set<number>();
    this.forEachOut(c, (d) => downstream.add(d));
    for (const d of downstream) {
      if (!this.order(c, d)) {
        this.stale = true;
        return;
      }
    }
    let waiting = 0;
    this.forEachIn(c, (u) => {
      if (this.region.has(u)) waiting++;
    });
    if (waiting > 0) this.addToRegion(c, waiting);
    else this.work.add(c);
  }

  taskRemoving(t: Task): void {
    this.touched.task(t);
    this.dirty.delete(t);
    this.running.delete(t);
    if (this.stale) return;
    const c = t.comp;
    const comp = this.comp(c);
    if (comp.members.length > 1) {
      this.stale = true;
      return;
    }
    if (this.region.has(c)) {
      this.releaseDownstream(c);
      this.region.delete(c);
    }
    this.dispatchable.delete(c);
    comp.members = [];
    comp.dirtyCount = 0;
    comp.runningCount = 0;
  }

  hashChanged(p: number): void {
    this.touched.path(p);
  }

  edgeAdded(from: Task, to: Task): void {
    if (this.stale) return;
    const cu = from.comp;
    const cv = to.comp;
    if (cu === cv) {
      if (from === to) this.comp(cu).cyclic = true;
      return;
    }
    if (!this.order(cu, cv)) {
      this.stale = true;
      return;
    }
    if (!this.region.has(cu)) return;
    if (this.region.has(cv)) {
      this.comp(cv).waiting++;
      this.work.add(cv);
    } else this.addToRegion(cv, 1);
  }

  edgeRemoved(from: Task, to: Task): void {
    if (this.stale) return;
    const cu = from.comp;
    const cv = to.comp;
    if (cu === cv) {
      const comp = this.comp(cu);
      if (comp.members.length > 1) this.stale = true;
      else comp.cyclic = this.selfLoop(to);
      return;
    }
    if (!this.region.has(cu)) return;
    this.comp(cv).waiting--;
    this.work.add(cv);
  }

  private selfLoop(t: Task): boolean {
    const producer = this.graph.producer;
    for (const p of t.inputs) if (producer[p] === t.idx) return true;
    return false;
  }

  /**
   * Pearce-Kelly: make rank[x] < rank[y] for a new edge x → y by reordering only the comps whose
   * rank lies between. False when y reaches x: the edge closes a cycle.
   */
  private order(x: number, y: number): boolean {
    const rank = (c: number) => this.comp(c).rank;
    const ub = rank(x);
    const lb = rank(y);
    if (ub < lb) return true;
    const forward: number[] = [];
    const seenF = new Set<number>([y]);
    const stack = [y];
    for (let z = stack.pop(); z !== undefined; z = stack.pop()) {
      if (z === x) return false;
      forward.push(z);
      this.forEachOut(z, (d) => {
        if (rank(d) <= ub && !seenF.has(d)) {
          seenF.add(d);
          stack.push(d);
        }
      });
    }
    const backward: number[] = [];
    const seenB = new Set<number>([x]);
    stack.push(x);
    for (let z = stack.pop(); z !== undefined; z = stack.pop()) {
      backward.push(z);
      this.forEachIn(z, (u) => {
        if (rank(u) >= lb && !seenB.has(u)) {
          seenB.add(u);
          stack.push(u);
        }
      });
    }
    const byRank = (a: Component, b: Component) => a.rank - b.rank;
    const moved = [
      ...backward.map((c) => this.comp(c)).sort(byRank),
      ...forward.map((c) => this.comp(c)).sort(byRank),
    ];
    const pool = moved.map((comp) => comp.rank).sort((a, b) => a - b);
    pool.forEach((r, i) => {
      at(moved, i, 'reordered component').rank = r;
    });
    return true;
  }

  /** Components from scratch (Tarjan over task → producer-of-input edges), then the region. */
  recompute(): void {
    const g = this.graph;
    const tasks = g.tasks;
    const n = tasks.length;
    // Each pass in a function of its own, so V8 keeps each loop's optimised code (see
    // loadSnapshot): this runs once per restart, over every edge.
    const { offsets, targets } = taskEdges(g);
    const { comp, count } = tarjan(n, offsets, targets, (v) => tasks[v] !== undefined);
    const members = componentMembers(tasks, comp, count);
    this.comps = members.map((ids, c) => {
      const [idx] = ids;
      if (idx === undefined) throw new GraphInvariantError('first member of component', c);
      const first = g.task(idx);
      const comp = new Component(ids, c, ids.length > 1 || this.selfLoop(first), false);
      for (const idx of ids) {
        const t = g.task(idx);
        t.comp = c;
        if (t.dirty) comp.dirtyCount++;
        if (t.running) comp.runningCount++;
        comp.pass = Math.max(comp.pass, t.runPass);
      }
      return comp;
    });
    this.nextRank = count;
    this.region.clear();
    this.dispatchable.clear();
    this.work.clear();
    this.stale = false;
    this.comps.forEach((comp, c) => {
      if ((comp.dirtyCount > 0 || comp.runningCount > 0) && !this.region.has(c)) {
        this.addToRegion(c, 0);
      }
    });
  }

  /** The component's tasks in pass order (computed once per component, on first use). */
  ordered(c: number): number[] {
    const comp = this.comp(c);
    if (comp.members.length > 1 && !comp.inPassOrder) {
      comp.members = this.passOrder(comp.members);
      comp.inPassOrder = true;
    }
    return comp.members;
  }

  /** Dependencies first (DFS post-order), starting from the lowest task id: deterministic. */
  private passOrder(ids: number[]): number[] {
    const g = this.graph;
    const inComp = new Set(ids);
    const id = (v: number) => g.task(v).id;
    const byId = (a: number, b: number) => (id(a) < id(b) ? -1 : 1);
    const deps = (v: number) =>
      [...new Set(g.task(v).inputs.map((p) => g.producerOf(p)))]
        .filter((u) => u !== v && inComp.has(u))
        .sort(byId);
    const roots = [...ids].sort(byId);
    return ids.length <= GRAPHLIB_MAX_COMPONENT
      ? postorderWithGraphlib(roots, deps, id)
      : postorderIterative(roots, deps);
  }
}

/** Task → producer-of-input edges in CSR form (offsets per task index, then targets). */
function taskEdges(g: Graph): { offsets: Int32Array; targets: Int32Array } {
  const tasks = g.tasks;
  const n = tasks.length;
  const offsets = new Int32Array(n + 1);
  // The producer table read directly: these loops see every input edge (a path a task reads is
  // always interned, so its entry exists).
  const producer = g.producer;
  let edges = 0;
  for (let v = 0; v < n; v++) {
    const t = tasks[v];
    if (t) for (const p of t.inputs) if ((producer[p] ?? -1) >= 0) edges++;
    offsets[v + 1] = edges;
  }
  const targets = new Int32Array(edges);
  for (let v = 0, e = 0; v < n; v++) {
    const t = tasks[v];
    if (!t) continue;
    for (const p of t.inputs) {
      const prod = producer[p] ?? -1;
      if (prod >= 0) targets[e++] = prod;
    }
  }
  return { offsets, targets };
}

/**
 * The task indices of each component, in index order. Lists of exact length: most components
 * are one task, and a list grown by push keeps room for 16.
 */
function componentMembers(
  tasks: readonly (Task | undefined)[],
  comp: Int32Array,
  count: number,
): number[][] {
  const n = tasks.length;
  const sizes = new Int32Array(count);
  const filled = new Int32Array(count);
  for (let v = 0; v < n; v++) {
    if (!tasks[v]) continue;
    const c = int32At(comp, v, 'task');
    sizes[c] = int32At(sizes, c, 'component') + 1;
  }
  const members = Array.from(sizes, (size) => new Array<number>(size));
  for (let v = 0; v < n; v++) {
    if (!tasks[v]) continue;
    const c = int32At(comp, v, 'task');
    const slot = int32At(filled, c, 'component');
    filled[c] = slot + 1;
    const ids = members[c];
    if (ids === undefined) throw new GraphInvariantError('component', c);
    ids[slot] = v;
  }
  return members;
}

/**
 * graphlib is fast enough for the small cycles real projects have (LaTeX, generated code), but
 * its DFS recurses once per node, so a large transient cycle would overflow the stack: those go
 * to the iterative version. (Whole-graph SCCs never use graphlib: see the bench for figures.)
 */
const GRAPHLIB_MAX_COMPONENT = 1000;

function postorderWithGraphlib(
  roots: number[],
  deps: (v: number) => number[],
  name: (v: number) => string,
): number[] {
  const g = new Digraph({ directed: true });
  const byName = new Map<string, number>();
  for (const v of roots) {
    g.setNode(name(v));
    byName.set(name(v), v);
  }
  // Successors are visited in insertion order: sorted by id.
  for (const v of roots) for (const u of deps(v)) g.setEdge(name(v), name(u));
  return alg.postorder(g, roots.map(name)).map((n) => got(byName, n, 'task named'));
}

function postorderIterative(roots: number[], deps: (v: number) => number[]): number[] {
  const order: number[] = [];
  const seen = new Set<number>();
  for (const root of roots) {
    if (seen.has(root)) continue;
    seen.add(root);
    const stack: Array<{ v: number; next: number[]; i: number }> = [
      { v: root, next: deps(root), i: 0 },
    ];
    for (let top = stack.at(-1); top !== undefined; top = stack.at(-1)) {
      const w = top.next[top.i++];
      if (w !== undefined) {
        if (!seen.has(w)) {
          seen.add(w);
          stack.push({ v: w, next: deps(w), i: 0 });
        }
      } else {
        order.push(top.v);
        stack.pop();
      }
    }
  }
  return order;
}

/** One component (SCC) of the task graph and its scheduling state. */
export class Component {
  /** Tasks that may dispatch only at zero: task-level edges into it from other region components. */
  waiting = 0;
  /** The pass of the current round (0: not started). */
  pass = 0;
  dirtyCount = 0;
  runningCount = 0;
  /** Outputs whose hash changed in the current pass, for the non-convergence report. */
  changed: Set<number> | undefined = undefined;

  constructor(
    /** Task indices; a cycle's are put in pass order when first needed (`inPassOrder`). */
    public members: number[],
    /** Topological rank among components, kept by Pearce-Kelly reordering. */
    public rank: number,
    public cyclic: boolean,
    public inPassOrder: boolean,
  ) {}
}
