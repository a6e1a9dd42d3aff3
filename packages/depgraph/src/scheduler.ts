import { alg, Graph as Digraph } from '@dagrejs/graphlib';
import type { Graph, GraphListener } from './graph.js';
import { tarjan } from './tarjan.js';
import type { Run, Task } from './task.js';
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
  graph!: Graph;
  stale = true;
  /** Task indices per component; a cycle's are put in pass order when first needed. */
  members: number[][] = [];
  private inPassOrder: boolean[] = [];
  cyclic: boolean[] = [];
  rank: number[] = [];
  waiting: number[] = [];
  pass: number[] = [];
  dirtyCount: number[] = [];
  runningCount: number[] = [];
  /** Outputs whose hash changed in the current pass, for the non-convergence report. */
  changed: (Set<number> | undefined)[] = [];
  readonly region = new Set<number>();
  readonly dispatchable = new Set<number>();
  readonly dirty = new Set<Task>();
  readonly running = new Set<Task>();
  newlyNonConvergent: NonConvergence[] = [];
  private readonly work = new Set<number>();
  private nextRank = 0;

  constructor(private readonly defaultPassLimit: number) {}

  setDirty(t: Task, dirty: boolean): void {
    if (t.dirty === dirty) return;
    t.dirty = dirty;
    if (dirty) this.dirty.add(t);
    else this.dirty.delete(t);
    if (this.stale || t.comp < 0) return;
    this.dirtyCount[t.comp]! += dirty ? 1 : -1;
    this.work.add(t.comp);
  }

  setRunning(t: Task, run: Run | undefined): void {
    const was = t.running !== undefined;
    t.running = run;
    if (was === (run !== undefined)) return;
    if (run) this.running.add(t);
    else this.running.delete(t);
    if (this.stale || t.comp < 0) return;
    this.runningCount[t.comp]! += run ? 1 : -1;
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
    const ids = c >= 0 && this.members[c]?.includes(t.idx) ? this.members[c]! : [t.idx];
    for (const idx of ids) {
      const m = this.graph.tasks[idx];
      if (!m) continue;
      m.runPass = 0;
      m.nc = undefined;
    }
    if (this.stale || c < 0) return;
    this.pass[c] = 0;
    this.changed[c] = undefined;
    this.work.add(c);
  }

  noteChanged(t: Task, output: number): void {
    if (this.stale || t.comp < 0) return;
    let set = this.changed[t.comp];
    if (!set) this.changed[t.comp] = set = new Set();
    set.add(output);
  }

  passLimit(c: number): number {
    let limit = 0;
    for (const idx of this.members[c]!) {
      limit = Math.max(limit, this.graph.tasks[idx]!.rule.spec.passLimit ?? this.defaultPassLimit);
    }
    return limit || this.defaultPassLimit;
  }

  runnable(t: Task): boolean {
    if (!t.dirty || t.running || t.failed !== undefined || t.nc) return false;
    const hash = this.graph.hash;
    for (const p of t.required) if (hash[p] === undefined) return false;
    return true;
  }

  /** The task the component would start next, if any. */
  candidate(c: number): Task | undefined {
    const p = this.pass[c]!;
    for (const idx of this.ordered(c)) {
      const t = this.graph.tasks[idx]!;
      if (t.runPass < p && this.runnable(t)) return t;
    }
    return undefined;
  }

  flush(): void {
    while (this.work.size) {
      const c = this.work.values().next().value!;
      this.work.delete(c);
      this.advance(c);
    }
  }

  private advance(c: number): void {
    if (this.stale || this.members[c]!.length === 0) return;
    const active = this.dirtyCount[c]! > 0 || this.runningCount[c]! > 0;
    if (!this.region.has(c)) {
      if (!active) return;
      this.addToRegion(c, 0);
    }
    if (this.waiting[c]! > 0 || this.runningCount[c]! > 0) {
      this.dispatchable.delete(c);
      return;
    }
    if (!active) {
      this.settle(c);
      return;
    }
    if (this.pass[c] === 0) this.pass[c] = 1;
    let next = this.candidate(c);
    if (!next && this.members[c]!.some((i) => this.runnable(this.graph.tasks[i]!))) {
      // Every runnable task already ran in this pass and something is dirty again.
      if (this.pass[c]! >= this.passLimit(c)) this.markNonConvergent(c);
      else {
        this.pass[c]!++;
        this.changed[c] = undefined;
        next = this.candidate(c);
      }
    }
    if (next) this.dispatchable.add(c);
    else this.dispatchable.delete(c);
  }

  private addToRegion(c: number, waiting: number): void {
    this.region.add(c);
    this.waiting[c] = waiting;
    this.work.add(c);
    const stack = [c];
    while (stack.length) {
      this.forEachOut(stack.pop()!, (d) => {
        if (!this.region.has(d)) {
          this.region.add(d);
          this.waiting[d] = 0;
          stack.push(d);
        }
        this.waiting[d]!++;
        this.work.add(d);
      });
    }
  }

  private settle(c: number): void {
    this.region.delete(c);
    this.dispatchable.delete(c);
    this.waiting[c] = 0;
    this.pass[c] = 0;
    this.changed[c] = undefined;
    for (const idx of this.members[c]!) this.graph.tasks[idx]!.runPass = 0;
    this.releaseDownstream(c);
  }

  private releaseDownstream(c: number): void {
    this.forEachOut(c, (d) => {
      if (!this.region.has(d)) return;
      this.waiting[d]!--;
      this.work.add(d);
    });
  }

  private markNonConvergent(c: number): void {
    const g = this.graph;
    const report: NonConvergence = {
      component: c,
      tasks: this.ordered(c).map((i) => g.tasks[i]!.id),
      artefacts: [...(this.changed[c] ?? [])].map((p) => g.paths[p]!).sort(),
      passes: this.pass[c]!,
    };
    for (const idx of this.members[c]!) g.tasks[idx]!.nc = report;
    this.newlyNonConvergent.push(report);
  }

  /** Marks a cycle as not converging again after a restart (see restoreNonConvergence). */
  restoreNonConvergent(c: number, changed: number[], passes: number): void {
    const g = this.graph;
    const members = this.members[c]!;
    if (!this.cyclic[c] || !members.some((idx) => g.tasks[idx]!.dirty)) return;
    const report: NonConvergence = {
      component: c,
      tasks: this.ordered(c).map((i) => g.tasks[i]!.id),
      artefacts: changed.map((p) => g.paths[p]!).sort(),
      passes,
    };
    for (const idx of members) g.tasks[idx]!.nc = report;
    this.pass[c] = passes;
    this.changed[c] = new Set(changed);
    this.work.add(c);
  }

  /** A task ran in `pass` of its component's current round before a restart (restorePass). */
  restorePass(t: Task, pass: number): void {
    t.runPass = Math.max(t.runPass, pass);
    if (this.stale || t.comp < 0) return;
    this.pass[t.comp] = Math.max(this.pass[t.comp]!, t.runPass);
    this.work.add(t.comp);
  }

  /** Calls `fn` once per task-level edge from component c to another component. */
  forEachOut(c: number, fn: (d: number) => void): void {
    const { tasks, producer, consumers } = this.graph;
    for (const idx of this.members[c]!) {
      for (const o of tasks[idx]!.outputs) {
        if (producer[o] !== idx) continue;
        const list = consumers[o];
        if (!list) continue;
        for (const v of list) {
          const d = tasks[v]!.comp;
          if (d !== c) fn(d);
        }
      }
    }
  }

  forEachIn(c: number, fn: (u: number) => void): void {
    const { tasks, producer } = this.graph;
    for (const idx of this.members[c]!) {
      for (const p of tasks[idx]!.inputs) {
        const prod = producer[p]!;
        if (prod < 0) continue;
        const u = tasks[prod]!.comp;
        if (u !== c) fn(u);
      }
    }
  }

  taskAdded(t: Task): void {
    if (this.stale) return;
    const c = this.members.length;
    t.comp = c;
    this.members.push([t.idx]);
    this.rank.push(this.nextRank++);
    this.cyclic.push(this.selfLoop(t));
    this.waiting.push(0);
    this.pass.push(0);
    this.dirtyCount.push(t.dirty ? 1 : 0);
    this.runningCount.push(0);
    this.changed.push(undefined);
    this.inPassOrder.push(true);
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
    this.dirty.delete(t);
    this.running.delete(t);
    if (this.stale) return;
    const c = t.comp;
    if (this.members[c]!.length > 1) {
      this.stale = true;
      return;
    }
    if (this.region.has(c)) {
      this.releaseDownstream(c);
      this.region.delete(c);
    }
    this.dispatchable.delete(c);
    this.members[c] = [];
    this.dirtyCount[c] = 0;
    this.runningCount[c] = 0;
  }

  edgeAdded(from: Task, to: Task): void {
    if (this.stale) return;
    const cu = from.comp;
    const cv = to.comp;
    if (cu === cv) {
      if (from === to) this.cyclic[cu] = true;
      return;
    }
    if (!this.order(cu, cv)) {
      this.stale = true;
      return;
    }
    if (!this.region.has(cu)) return;
    if (this.region.has(cv)) {
      this.waiting[cv]!++;
      this.work.add(cv);
    } else this.addToRegion(cv, 1);
  }

  edgeRemoved(from: Task, to: Task): void {
    if (this.stale) return;
    const cu = from.comp;
    const cv = to.comp;
    if (cu === cv) {
      if (this.members[cu]!.length > 1) this.stale = true;
      else this.cyclic[cu] = this.selfLoop(to);
      return;
    }
    if (!this.region.has(cu)) return;
    this.waiting[cv]!--;
    this.work.add(cv);
  }

  private selfLoop(t: Task): boolean {
    const producer = this.graph.producer;
    return t.inputs.some((p) => producer[p] === t.idx);
  }

  /**
   * Pearce-Kelly: make rank[x] < rank[y] for a new edge x → y by reordering only the comps whose
   * rank lies between. False when y reaches x: the edge closes a cycle.
   */
  private order(x: number, y: number): boolean {
    const rank = this.rank;
    if (rank[x]! < rank[y]!) return true;
    const lb = rank[y]!;
    const ub = rank[x]!;
    const forward: number[] = [];
    const seenF = new Set<number>([y]);
    const stack = [y];
    while (stack.length) {
      const z = stack.pop()!;
      if (z === x) return false;
      forward.push(z);
      this.forEachOut(z, (d) => {
        if (rank[d]! <= ub && !seenF.has(d)) {
          seenF.add(d);
          stack.push(d);
        }
      });
    }
    const backward: number[] = [];
    const seenB = new Set<number>([x]);
    stack.push(x);
    while (stack.length) {
      const z = stack.pop()!;
      backward.push(z);
      this.forEachIn(z, (u) => {
        if (rank[u]! >= lb && !seenB.has(u)) {
          seenB.add(u);
          stack.push(u);
        }
      });
    }
    const byRank = (a: number, b: number) => rank[a]! - rank[b]!;
    backward.sort(byRank);
    forward.sort(byRank);
    const pool = [...backward, ...forward].map((c) => rank[c]!).sort((a, b) => a - b);
    [...backward, ...forward].forEach((c, i) => {
      rank[c] = pool[i]!;
    });
    return true;
  }

  /** Components from scratch (Tarjan over task → producer-of-input edges), then the region. */
  recompute(): void {
    const { tasks, producer } = this.graph;
    const n = tasks.length;
    const offsets = new Int32Array(n + 1);
    for (let v = 0; v < n; v++) {
      let deps = 0;
      const t = tasks[v];
      if (t) for (const p of t.inputs) if (producer[p]! >= 0) deps++;
      offsets[v + 1] = offsets[v]! + deps;
    }
    const targets = new Int32Array(offsets[n]!);
    for (let v = 0, e = 0; v < n; v++) {
      const t = tasks[v];
      if (!t) continue;
      for (const p of t.inputs) {
        const prod = producer[p]!;
        if (prod >= 0) targets[e++] = prod;
      }
    }
    const { comp, count } = tarjan(n, offsets, targets, (v) => tasks[v] !== undefined);
    // Member lists of exact length: most components are one task, and a list grown by push
    // keeps room for 16.
    const sizes = new Int32Array(count);
    for (let v = 0; v < n; v++) if (tasks[v]) sizes[comp[v]!]!++;
    this.members = new Array<number[]>(count);
    for (let c = 0; c < count; c++) this.members[c] = new Array<number>(sizes[c]!);
    const filled = new Int32Array(count);
    for (let v = 0; v < n; v++) {
      if (!tasks[v]) continue;
      const c = comp[v]!;
      this.members[c]![filled[c]!++] = v;
    }
    this.cyclic = new Array(count).fill(false);
    this.rank = Array.from({ length: count }, (_, i) => i);
    this.nextRank = count;
    this.waiting = new Array(count).fill(0);
    this.pass = new Array(count).fill(0);
    this.dirtyCount = new Array(count).fill(0);
    this.runningCount = new Array(count).fill(0);
    this.changed = new Array(count).fill(undefined);
    this.inPassOrder = new Array(count).fill(false);
    this.region.clear();
    this.dispatchable.clear();
    this.work.clear();
    for (let c = 0; c < count; c++) {
      const ids = this.members[c]!;
      for (const idx of ids) tasks[idx]!.comp = c;
      this.cyclic[c] = ids.length > 1 || this.selfLoop(tasks[ids[0]!]!);
      for (const idx of ids) {
        const t = tasks[idx]!;
        if (t.dirty) this.dirtyCount[c]!++;
        if (t.running) this.runningCount[c]!++;
        this.pass[c] = Math.max(this.pass[c]!, t.runPass);
      }
    }
    this.stale = false;
    for (let c = 0; c < count; c++) {
      if ((this.dirtyCount[c]! > 0 || this.runningCount[c]! > 0) && !this.region.has(c)) {
        this.addToRegion(c, 0);
      }
    }
  }

  /** The component's tasks in pass order (computed once per component, on first use). */
  ordered(c: number): number[] {
    const ids = this.members[c]!;
    if (ids.length > 1 && !this.inPassOrder[c]) {
      this.members[c] = this.passOrder(ids);
      this.inPassOrder[c] = true;
    }
    return this.members[c]!;
  }

  /** Dependencies first (DFS post-order), starting from the lowest task id: deterministic. */
  private passOrder(ids: number[]): number[] {
    const { tasks, producer } = this.graph;
    const inComp = new Set(ids);
    const byId = (a: number, b: number) => (tasks[a]!.id < tasks[b]!.id ? -1 : 1);
    const deps = (v: number) =>
      [...new Set(tasks[v]!.inputs.map((p) => producer[p]!))]
        .filter((u) => u !== v && inComp.has(u))
        .sort(byId);
    const roots = [...ids].sort(byId);
    return ids.length <= GRAPHLIB_MAX_COMPONENT
      ? postorderWithGraphlib(roots, deps, (v) => tasks[v]!.id)
      : postorderIterative(roots, deps);
  }
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
  return alg.postorder(g, roots.map(name)).map((n) => byName.get(n)!);
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
    while (stack.length) {
      const top = stack[stack.length - 1]!;
      if (top.i < top.next.length) {
        const w = top.next[top.i++]!;
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
