import { createHash } from 'node:crypto';
import { dirtyReason } from './dirty.js';
import { InvalidHashError, TaskNotReadyError, UnknownTaskError } from './errors.js';
import { artefactState, status, why } from './explain.js';
import {
  exportState,
  type GraphJSON,
  type GraphStats,
  graphStats,
  type PlanJSON,
  plan,
  toDOT,
  toJSON,
  toJSONPieces,
  traceRecord,
} from './export.js';
import { type ChangeLog, type Graph, newLog } from './graph.js';
import { checkPath } from './path.js';
import { parseStateJson } from './restore.js';
import { compileRule } from './rule.js';
import { Scheduler } from './scheduler.js';
import { loadSnapshot, type Snapshot, snapshotState, takeSnapshot } from './snapshot.js';
import { decodeSnapshot, encodeSnapshot, isEncodedState } from './state-codec.js';
import type { Run, Task } from './task.js';
import { newTrace, type Trace } from './trace.js';
import type {
  ArtefactState,
  ChangeResult,
  CompletedReport,
  CompletedResult,
  DependencyManagerOptions,
  GraphState,
  PathStrings,
  ReadOptions,
  RuleSpec,
  Status,
  TaskInstance,
  TraceRecord,
  WhyStep,
} from './types.js';

/**
 * Keeps derived artefacts of one project rebuilt: rules and artefact hashes in, tasks to run out.
 * Pure: no I/O. The caller (MajorDomo) runs what ready() returns and reports back.
 *
 * A task is dirty when its verifying trace (hashes of the inputs and outputs of its last
 * successful run) no longer matches the current hashes, or it never ran. Cycles are rebuilt pass
 * by pass until nothing in them is dirty, or reported as not converging at the pass limit.
 */
export class DependencyManager {
  private readonly graph: Graph;
  private readonly sched: Scheduler;
  private runs = 0;
  private batching = false;
  /** Cycles that hit their pass limit during the last change (completed() reports them). */
  private lastNonConvergent: CompletedResult['nonConvergent'] = [];
  private cancels: string[] = [];
  #version = 0;

  constructor(options: DependencyManagerOptions = {}) {
    const passLimit = options.passLimit ?? 5;
    if (!Number.isInteger(passLimit) || passLimit < 1) {
      throw new RangeError(`passLimit must be a positive integer, got ${passLimit}`);
    }
    this.sched = new Scheduler(passLimit, options.maxDerivationDepth ?? 64);
    this.graph = this.sched.graph;
  }

  /** Rebuilds the graph from what MajorDomo persisted (after a crash, say). */
  static fromState(state: GraphState, options?: DependencyManagerOptions): DependencyManager {
    const dm = new DependencyManager(options);
    dm.batch(() => {
      // for-in, not Object.entries: no pair array per artefact (fromState took ~20% more CPU).
      // An undefined hash gets the same InvalidHashError as before.
      for (const path in state.artefacts) dm.setArtefact(path, state.artefacts[path] ?? '');
      for (const [path, projections] of Object.entries(state.projections ?? {}))
        dm.setProjections(path, state.artefacts[path] ?? '', projections);
      for (const rule of state.rules) dm.addRule(rule);
      for (const taskId in state.traces) {
        const trace = state.traces[taskId];
        if (trace) dm.restoreTrace(taskId, trace);
      }
    });
    return dm;
  }

  /**
   * Rebuilds the graph from a persisted state: the compact form exportBytes() writes, or the
   * older JSON of exportState() (checked for shape). Corrupt or truncated bytes throw
   * StateCorruptError naming the part that is wrong; nothing half-loaded is returned.
   */
  static fromBytes(
    bytes: Uint8Array,
    options?: DependencyManagerOptions,
    read?: ReadOptions,
  ): DependencyManager {
    if (!isEncodedState(bytes)) return DependencyManager.fromState(parseStateJson(bytes), options);
    return DependencyManager.fromSnapshot(decodeSnapshot(bytes, read), options);
  }

  /** fromBytes after decodeSnapshot (for a caller that times the two apart). */
  static fromSnapshot(snap: Snapshot, options?: DependencyManagerOptions): DependencyManager {
    const dm = new DependencyManager(options);
    // Another derivation depth may derive other tasks: derive them again from what they come from.
    if (dm.graph.maxDepth !== snap.extras.maxDepth) {
      return DependencyManager.fromState(snapshotState(snap), options);
    }
    dm.batch(() => {
      for (const t of loadSnapshot(snap, dm.graph)) dm.sched.setDirty(t, true);
    });
    return dm;
  }

  /**
   * Runs several changes as one: dirtiness is evaluated once at the end and one result covers
   * them all (the calls inside return empty results). For restores and bursts of file events.
   */
  batch(changes: () => void): ChangeResult {
    if (this.batching) {
      changes();
      return emptyResult();
    }
    return this.change(() => {
      this.batching = true;
      try {
        changes();
      } finally {
        this.batching = false;
      }
    });
  }

  /** The spec of the rule `id` as compiled into the graph (so it passed compileRule), if any. */
  ruleSpec(id: string): RuleSpec | undefined {
    return this.graph.rules.get(id)?.spec;
  }

  /** Adds a rule, or replaces one with the same id (dropping its traces if it changed). */
  addRule(spec: RuleSpec): ChangeResult {
    const rule = compileRule(spec);
    return this.change(() => {
      const old = this.graph.rules.get(rule.id);
      if (old?.fingerprint === rule.fingerprint) return;
      if (old) {
        this.graph.removeRule(rule.id);
        for (const id of this.graph.traces.keys()) {
          if (id.startsWith(`${rule.id}:`)) this.graph.traces.delete(id);
        }
      }
      this.graph.addRule(rule);
    });
  }

  /** Retires a rule: its tasks go; their existing outputs become plain files (`orphaned`). */
  removeRule(ruleId: string): ChangeResult {
    return this.change(() => this.graph.removeRule(ruleId));
  }

  /** The artefact exists with this hash (an edit, a restore, or an output changed by hand). */
  setArtefact(path: string, hash: string): ChangeResult {
    if (typeof hash !== 'string' || hash.length === 0) throw new InvalidHashError(path);
    const p = this.pathId(path);
    return this.change(() => {
      if (this.graph.hash[p] === hash) return;
      this.graph.setHash(p, hash);
      this.hashChanged(p, undefined);
    });
  }

  /**
   * Projected hashes of the artefact's bytes with hash `hash` (projection key → hash), learned
   * outside a build result (restored after a restart, say). Ignored when the artefact no longer
   * has that hash: they describe other bytes.
   */
  setProjections(
    path: string,
    hash: string,
    projections: Readonly<Record<string, string>>,
  ): ChangeResult {
    const p = this.graph.id(path);
    for (const key in projections) {
      const h = projections[key];
      if (typeof h !== 'string' || h.length === 0) throw new InvalidHashError(path);
    }
    return this.change(() => {
      if (p === undefined || this.graph.hash[p] !== hash) return;
      this.graph.setProjections(p, projections);
    });
  }

  deleteArtefact(path: string): ChangeResult {
    const p = this.graph.id(path);
    if (p === undefined) checkPath(path);
    return this.change(() => {
      if (p === undefined || this.graph.hash[p] === undefined) return;
      this.graph.deleteHash(p);
      this.hashChanged(p, undefined);
    });
  }

  /** Restores a task's last successful run; the task need not exist yet. */
  restoreTrace(taskId: string, trace: TraceRecord): ChangeResult {
    const inputs = this.traceEntries(trace.inputs);
    const outputs = this.traceEntries(trace.outputs);
    // Discovered dependencies that existed are inputs too: a scan of a few keys is cheaper than
    // hashing the path again for the path table.
    const discovered = trace.discovered?.map((path) => {
      return inputs.ids[inputs.paths.indexOf(path)] ?? this.pathId(path);
    });
    return this.putTrace(taskId, {
      inIds: inputs.ids,
      inHashes: inputs.hashes,
      outIds: outputs.ids,
      outHashes: outputs.hashes,
      discovered,
    });
  }

  /**
   * restoreTrace by path ids. Each hash is checked, and one the graph has now is shared rather
   * than kept twice (a restored trace mostly matches the current hashes).
   */
  private putTrace(taskId: string, stored: Trace & { inHashes: string[]; outHashes: string[] }) {
    const g = this.graph;
    const check = (ids: readonly number[], hashes: string[]) => {
      for (let i = 0; i < ids.length; i++) {
        const p = ids[i] ?? -1;
        const hash = hashes[i];
        if (typeof hash !== 'string' || hash.length === 0) throw new InvalidHashError(g.path(p));
        const current = g.hash[p];
        if (current === hash) hashes[i] = current;
      }
    };
    check(stored.inIds, stored.inHashes);
    check(stored.outIds, stored.outHashes);
    return this.change(() => {
      g.traces.set(taskId, stored);
      const t = g.taskById.get(taskId);
      if (!t) return;
      t.unblock();
      this.sched.touched.task(t);
      g.setDiscovered(t, g.resolveDiscovered(t, stored));
    });
  }

  /**
   * The round a cyclic task's run belongs to: a digest of its component's inputs from outside
   * the component, with their hashes. An edit outside starts a new round (hashChanged), and so
   * changes the key. Undefined for a task outside any cycle, or unknown.
   */
  roundKey(taskId: string): string | undefined {
    this.fresh();
    const g = this.graph;
    const t = g.taskById.get(taskId);
    const comp = t && t.comp >= 0 ? this.sched.comp(t.comp) : undefined;
    if (!comp?.cyclic) return undefined;
    const inside = new Set(comp.members);
    const parts = new Set<string>();
    for (const idx of comp.members)
      for (const p of g.task(idx).inputs) {
        const prod = g.producerOf(p);
        if (prod >= 0 && inside.has(prod)) continue;
        parts.add(`${g.paths[p]}\0${g.hash[p] ?? ''}`);
      }
    return createHash('sha256')
      .update([...parts].sort().join('\n'))
      .digest('hex')
      .slice(0, 32);
  }

  /**
   * Restores the pass a cyclic task last ran in (after restoreTrace), when that run's round is
   * still the current one (`round`: its roundKey then). A restart in the middle of a fixpoint
   * then goes on with the pass it was in, instead of starting the round again and running up
   * to the pass limit more passes. A run of an earlier round changes nothing.
   */
  restorePass(taskId: string, pass: number, round: string): ChangeResult {
    if (!Number.isInteger(pass) || pass < 1)
      throw new RangeError(`pass for ${taskId} must be a positive integer, got ${pass}`);
    const current = this.roundKey(taskId);
    return this.change(() => {
      const t = this.graph.taskById.get(taskId);
      if (t && current !== undefined && current === round) this.sched.restorePass(t, pass);
    });
  }

  /**
   * Restores cycles reported as not converging before a restart, from the artefacts that were
   * still changing in their last pass (path → passes run). A cycle with something dirty stays
   * blocked until an edit starts a new round, instead of being given the pass limit again; one
   * that is clean now, or paths no rule produces, are left alone.
   */
  restoreNonConvergence(artefacts: Readonly<Record<string, number>>): ChangeResult {
    this.fresh();
    const byComp = new Map<number, { paths: number[]; passes: number }>();
    for (const [path, passes] of Object.entries(artefacts)) {
      if (!Number.isInteger(passes) || passes < 1)
        throw new RangeError(`passes for ${path} must be a positive integer, got ${passes}`);
      const p = this.graph.id(path);
      if (p === undefined) continue;
      const prod = this.graph.producerOf(p);
      if (prod < 0) continue;
      const c = this.graph.task(prod).comp;
      const entry = byComp.get(c) ?? { paths: [], passes: 0 };
      entry.paths.push(p);
      entry.passes = Math.max(entry.passes, passes);
      byComp.set(c, entry);
    }
    return this.change(() => {
      for (const [c, { paths, passes }] of byComp)
        this.sched.restoreNonConvergent(c, paths, passes);
    });
  }

  /** The verifying trace of a task's last successful run, as the graph compares it. */
  trace(taskId: string): TraceRecord | undefined {
    const trace = this.graph.traces.get(taskId);
    return trace && traceRecord(this.graph, trace);
  }

  /** Drops a task's trace so it rebuilds (a forced build); unknown ids change nothing. */
  forget(taskId: string): ChangeResult {
    return this.change(() => {
      this.graph.traces.delete(taskId);
      const t = this.graph.taskById.get(taskId);
      if (!t) return;
      t.unblock();
      this.sched.touched.task(t);
      this.sched.resetRound(t);
      this.graph.log.recheck.add(t);
    });
  }

  /**
   * The graph's own strings for `path`: the path, its hash and its producer's task id (undefined
   * when the graph does not know the path). A caller holding the same values elsewhere (records
   * of 100,000s of artefacts) can hold these instead of copies of its own.
   */
  strings(path: string): { path: string; hash?: string; producer?: string } | undefined {
    const g = this.graph;
    const p = g.id(path);
    if (p === undefined) return undefined;
    const prod = g.producerOf(p);
    return {
      path: g.path(p),
      ...(g.hash[p] !== undefined ? { hash: g.hash[p] } : {}),
      ...(prod >= 0 ? { producer: g.task(prod).id } : {}),
    };
  }

  /**
   * The graph's id of `path` (its index in pathsInOrder()), or undefined when it has not interned
   * it. Ids never change or go away once given, so a caller may keep things by them (MajorDomo's
   * artefact records: record-index.ts). Asked in id order, each is found without a lookup.
   */
  internedId(path: string): number | undefined {
    return this.graph.id(path);
  }

  /**
   * Every path the graph has interned, in its own order (ids never go away): its index there is
   * the id stringsAt() takes. A caller can keep a path's records by that id instead of the path
   * (MajorDomo's snapshot: snapshot-records.ts).
   */
  pathsInOrder(): string[] {
    const g = this.graph;
    const out = new Array<string>(g.pathCount());
    for (let p = 0; p < out.length; p++) out[p] = g.path(p);
    return out;
  }

  /**
   * strings() of the path at `id` (its index in pathsInOrder()), or undefined when the graph has
   * no such id. Undefined fields are absent from strings()'s answer, undefined here. Written into
   * `into` when given (and it returned): a caller asking of each of 100,000s of ids in turn
   * (MajorDomo's snapshot records, at each restart and save) makes no object per id.
   */
  stringsAt(id: number, into?: PathStrings): PathStrings | undefined {
    const g = this.graph;
    if (!Number.isInteger(id) || id < 0 || id >= g.pathCount()) return undefined;
    const prod = g.producerOf(id);
    const path = g.path(id);
    const hash = g.hash[id];
    const producer = prod >= 0 ? g.task(prod).id : undefined;
    if (!into) return { path, hash, producer };
    into.path = path;
    into.hash = hash;
    into.producer = producer;
    return into;
  }

  /** Id of the task that produces `path`, if any. */
  producerOf(path: string): string | undefined {
    const p = this.graph.id(path);
    const prod = p === undefined ? -1 : this.graph.producerOf(p);
    return prod >= 0 ? this.graph.task(prod).id : undefined;
  }

  /**
   * Tasks that may start now, at most `concurrency` minus those running. Independent components
   * give one task each in parallel; a cycle gives one task at a time, in its pass order.
   */
  ready(concurrency = Number.POSITIVE_INFINITY): TaskInstance[] {
    this.fresh();
    const out: TaskInstance[] = [];
    const room = concurrency - this.sched.running.size;
    for (const c of this.sched.dispatchable) {
      if (out.length >= room) break;
      const t = this.sched.candidate(c);
      if (t) out.push(this.instance(t, undefined));
    }
    return out;
  }

  /** Claims a task ready() returned: its inputs are snapshotted for the trace. */
  started(taskId: string): TaskInstance {
    this.fresh();
    const t = this.graph.taskById.get(taskId);
    if (!t) throw new UnknownTaskError(taskId);
    if (t.running) throw new TaskNotReadyError(taskId, 'already running');
    if (!this.sched.dispatchable.has(t.comp) || this.sched.candidate(t.comp) !== t) {
      throw new TaskNotReadyError(taskId, t.dirty ? 'it must wait for other work' : 'up to date');
    }
    const snapshot = new Map<number, string>();
    for (const p of t.inputs) {
      const h = this.graph.hash[p];
      if (h !== undefined) snapshot.set(p, h);
    }
    let projected: Map<number, string> | undefined;
    for (const [p, key] of t.projected ?? []) {
      const h = this.graph.projections.get(p)?.get(key);
      if (h === undefined) continue;
      projected ??= new Map();
      projected.set(p, h);
    }
    const run: Run = {
      run: ++this.runs,
      snapshot,
      projected,
      pass: this.sched.comp(t.comp).pass,
      prevRunPass: t.runPass,
    };
    t.runPass = run.pass;
    this.#version++;
    this.sched.setRunning(t, run);
    this.sched.flush();
    return this.instance(t, run);
  }

  /** ready() then started() for each: what to dispatch now. */
  take(concurrency = Number.POSITIVE_INFINITY): TaskInstance[] {
    return this.ready(concurrency).map((t) => this.started(t.id));
  }

  /** Records a successful run: outputs with an unchanged hash stop propagation there. */
  completed(taskId: string, report: CompletedReport): CompletedResult {
    const current = this.current(taskId, report.run);
    if (!current)
      return { ...this.change(() => {}), stale: true, changed: [], cutoff: [], nonConvergent: [] };
    const { task: t, run } = current;
    this.fresh();
    const g = this.graph;
    const changed: string[] = [];
    const cutoff: string[] = [];
    // Validate everything before changing anything.
    const out = new Map<number, string>();
    const undeclared: string[] = [];
    for (const [path, hash] of Object.entries(report.outputs)) {
      const o = g.id(path);
      if (o === undefined || !t.outputs.includes(o)) {
        undeclared.push(path);
        continue;
      }
      if (typeof hash !== 'string' || hash.length === 0) throw new InvalidHashError(path);
      out.set(o, hash);
    }
    const discovered = (report.discovered ?? []).map((path) => this.pathId(path));
    const projections = new Map<number, Readonly<Record<string, string>>>();
    for (const [path, byKey] of Object.entries(report.projections ?? {})) {
      const o = g.id(path);
      if (o === undefined || !out.has(o)) continue;
      for (const h of Object.values(byKey))
        if (typeof h !== 'string' || h.length === 0) throw new InvalidHashError(path);
      projections.set(o, byKey);
    }
    const result = this.change(() => {
      this.sched.setRunning(t, undefined);
      for (const path of undeclared) {
        g.log.warnings.push({
          code: 'DEPGRAPH_UNDECLARED_OUTPUT',
          message: `${taskId} reported ${path}, which its rule does not declare: ignored`,
          paths: [path],
          tasks: [taskId],
        });
      }
      const inputs = new Map(run.snapshot);
      // A projected input is recorded by its projection: known at dispatch, else as the run
      // reported it for the bytes it was started with; else by its whole hash (rerun on change).
      for (const [p, key] of t.projected ?? []) {
        if (!inputs.has(p)) continue;
        const reported = report.inputProjections?.[g.path(p)]?.[key];
        const h = run.projected?.get(p) ?? reported;
        if (typeof h !== 'string' || h.length === 0) continue;
        inputs.set(p, h);
        // Still the bytes the run read: the graph knows their projection now (a source's).
        if (h === reported && g.hash[p] === run.snapshot.get(p)) g.setProjections(p, { [key]: h });
      }
      // A dependency first seen now: the hash it has now is the best knowledge of what was read.
      for (const d of discovered) {
        const h = g.hash[d];
        if (!inputs.has(d) && h !== undefined) inputs.set(d, h);
      }
      g.traces.set(t.id, newTrace(inputs, out, discovered));
      t.unblock();
      this.sched.touched.task(t);
      for (const [o, hash] of out) {
        if (g.hash[o] === hash) {
          cutoff.push(g.path(o));
          const byKey = projections.get(o);
          if (byKey) g.setProjections(o, byKey);
          continue;
        }
        g.setHash(o, hash);
        const byKey = projections.get(o);
        if (byKey) g.setProjections(o, byKey);
        this.sched.noteChanged(t, o);
        changed.push(g.path(o));
        this.hashChanged(o, t);
      }
      g.setDiscovered(t, discovered);
    });
    return { ...result, stale: false, changed, cutoff, nonConvergent: this.lastNonConvergent };
  }

  /** The run failed: the task stays dirty and blocks its dependants until an input changes. */
  failed(taskId: string, reason: string, run?: number): ChangeResult & { stale: boolean } {
    const t = this.current(taskId, run)?.task;
    if (!t) return { ...this.change(() => {}), stale: true };
    this.fresh();
    return {
      ...this.change(() => {
        this.sched.setRunning(t, undefined);
        t.failed = reason;
        this.sched.touched.task(t);
        this.graph.log.recheck.add(t);
      }),
      stale: false,
    };
  }

  /** The caller cancelled the run (or lost it): the task is ready to be planned again. */
  cancelled(taskId: string, run?: number): ChangeResult & { stale: boolean } {
    const t = this.current(taskId, run)?.task;
    if (!t) return { ...this.change(() => {}), stale: true };
    return {
      ...this.change(() => {
        this.sched.cancelRun(t);
        this.graph.log.recheck.add(t);
      }),
      stale: false,
    };
  }

  /**
   * A user cancelled the run: the task is held, neither ready nor reported dirty to plan, until
   * an input changes (any change that would unblock a failure) or `release()`/`forget()`.
   */
  cancelledByRequest(taskId: string, run?: number): ChangeResult & { stale: boolean } {
    const t = this.current(taskId, run)?.task;
    if (!t) return { ...this.change(() => {}), stale: true };
    return {
      ...this.change(() => {
        this.sched.cancelRun(t);
        this.holdTask(t);
      }),
      stale: false,
    };
  }

  /**
   * Puts back holds from before a restart (tasks whose cancel on request still stands), each
   * only if `stillHeld` says so of the task as it is now (its inputs unchanged since the cancel,
   * say). A task that is up to date, running or unknown now is left alone: nothing is held but a
   * dirty task.
   */
  restoreHolds(
    taskIds: Iterable<string>,
    stillHeld: (task: TaskInstance) => boolean = () => true,
  ): ChangeResult {
    this.fresh();
    return this.change(() => {
      for (const id of taskIds) {
        const t = this.graph.taskById.get(id);
        if (t?.dirty && !t.running && stillHeld(this.instance(t, undefined))) this.holdTask(t);
      }
    });
  }

  /** A rebuild asked for explicitly: a task held by a cancel may be planned again. */
  release(taskId: string): ChangeResult {
    return this.change(() => {
      const t = this.graph.taskById.get(taskId);
      if (!t?.held) return;
      t.held = false;
      this.sched.touched.task(t);
      this.graph.log.recheck.add(t);
    });
  }

  /** Whether a task is held by a cancel on request. */
  held(taskId: string): boolean {
    return this.graph.taskById.get(taskId)?.held ?? false;
  }

  private holdTask(t: Task): void {
    t.held = true;
    this.sched.touched.task(t);
    this.graph.log.recheck.add(t);
  }

  /** Running tasks cancelled by changes since the last call (also returned by each change). */
  cancelOnChange(): string[] {
    const out = this.cancels;
    this.cancels = [];
    return out;
  }

  status(): Status {
    this.fresh();
    return status(this.graph, this.sched);
  }

  artefactState(path: string): ArtefactState {
    this.fresh();
    return artefactState(this.graph, this.sched, path);
  }

  /** The chain of changes, from a changed source to `path`, that makes it dirty ([] if not). */
  why(path: string): WhyStep[] {
    this.fresh();
    return why(this.graph, this.sched, path);
  }

  /** Pending work: components of the region in topological order. */
  plan(): PlanJSON {
    this.fresh();
    return plan(this.graph, this.sched);
  }

  toJSON(): GraphJSON {
    this.fresh();
    return toJSON(this.graph, this.sched);
  }

  /** JSON.stringify(toJSON()) in pieces of a few tens of KB, with no answer object held whole. */
  toJSONPieces(): string[] {
    this.fresh();
    return toJSONPieces(this.graph, this.sched);
  }

  /**
   * Goes up with every change to the graph (each mutation and each started run): an answer made
   * at one version (toJSONPieces, say) is still the answer while the version is the same.
   */
  get version(): number {
    return this.#version;
  }

  /** Graphviz; cycles are drawn as clusters. With `plan`, only the pending region. */
  toDOT(options: { plan?: boolean } = {}): string {
    this.fresh();
    return toDOT(this.graph, this.sched, options.plan ?? false);
  }

  /** Rules, existing artefacts and traces: enough for fromState() to rebuild the graph. */
  exportState(): GraphState {
    return exportState(this.graph);
  }

  /**
   * The graph as it is, in the compact form fromBytes() reads (state-codec.ts): with its tasks,
   * so a restart skips deriving them again and numbers everything as this graph does.
   */
  exportBytes(): Uint8Array {
    return encodeSnapshot(takeSnapshot(this.graph));
  }

  /**
   * The paths whose artefactState() may have changed since the last call (touched.ts), or
   * undefined when any may have (the first call, or after the components were numbered again).
   */
  takeTouched(): string[] | undefined {
    this.fresh();
    const touched = this.sched.touched;
    if (touched.all) {
      touched.reset();
      return undefined;
    }
    const g = this.graph;
    const paths = new Set<number>(touched.paths);
    const outputsOf = (t: Task | undefined) => {
      for (const o of t?.outputs ?? []) paths.add(o);
    };
    for (const t of touched.tasks) outputsOf(t);
    for (const c of touched.comps)
      for (const idx of this.sched.comps[c]?.members ?? []) outputsOf(g.tasks[idx]);
    touched.reset();
    return [...paths].map((p) => g.path(p));
  }

  /** Sizes; also forces the component analysis, so a loader can time it. */
  stats(): GraphStats {
    this.fresh();
    return graphStats(this.graph, this.sched);
  }

  /** The task and its run in flight, when `run` (if given) is that run. */
  private current(taskId: string, run: number | undefined): { task: Task; run: Run } | undefined {
    const task = this.graph.taskById.get(taskId);
    const running = task?.running;
    if (!task || !running || (run !== undefined && run !== running.run)) return undefined;
    return { task, run: running };
  }

  private fresh(): void {
    if (this.sched.stale) this.sched.recompute();
    this.sched.flush();
  }

  /** Runs one mutation and turns its log into the caller's result. */
  private change(mutate: () => void): ChangeResult {
    this.#version++;
    if (this.batching) {
      mutate();
      return emptyResult();
    }
    const log: ChangeLog = newLog();
    this.graph.log = log;
    this.sched.newlyNonConvergent = [];
    mutate();
    const nowDirty: string[] = [];
    for (const t of log.recheck) {
      if (!t.alive) continue;
      const dirty = dirtyReason(this.graph, t) !== undefined;
      if (dirty && !t.dirty) nowDirty.push(t.id);
      this.sched.setDirty(t, dirty);
      this.sched.touch(t);
    }
    this.sched.flush();
    this.lastNonConvergent = this.sched.newlyNonConvergent;
    this.cancels.push(...log.cancel);
    return {
      added: log.added,
      removed: log.removed,
      nowDirty: nowDirty.sort(),
      cancel: log.cancel,
      orphaned: log.orphaned,
      warnings: log.warnings,
    };
  }

  /**
   * Path `p` changed hash, written by `from` (a completed task) or from outside (undefined).
   * Runs reading the old hash are cancelled; a change from outside a component starts it on a
   * new round, so an edit during a fixpoint is not counted against the pass limit.
   */
  private hashChanged(p: number, from: Task | undefined): void {
    const g = this.graph;
    for (const c of g.readers(p) ?? []) {
      const t = g.task(c);
      if (t.running && t.running.snapshot.get(p) !== g.hash[p]) {
        g.log.cancel.push(t.id);
        this.sched.cancelRun(t);
      }
      t.unblock();
      this.sched.touched.task(t);
      if (!from || from.comp !== t.comp || this.sched.stale) this.sched.resetRound(t);
      g.log.recheck.add(t);
    }
    const prod = g.producerOf(p);
    if (prod >= 0 && !from) {
      const t = g.task(prod);
      // An output written from outside (a killed build's partial bytes, say) lifts a failure but
      // not a user's cancel: only its inputs, or a rebuild asked for, do.
      t.failed = undefined;
      this.sched.touched.task(t);
      this.sched.resetRound(t);
      g.log.recheck.add(t);
    }
  }

  /** Path ids and hashes of a persisted trace record (putTrace checks the hashes). */
  private traceEntries(record: Readonly<Record<string, string>>) {
    const paths = Object.keys(record);
    const hashes = Object.values(record);
    const ids = new Array<number>(paths.length);
    for (let i = 0; i < paths.length; i++) ids[i] = this.pathId(paths[i] ?? '');
    return { paths, ids, hashes };
  }

  /** Id of a path, validating it the first time it is seen. */
  private pathId(path: string): number {
    const p = this.graph.id(path);
    if (p !== undefined) return p;
    checkPath(path);
    return this.graph.add(path);
  }

  private instance(t: Task, run: Run | undefined): TaskInstance {
    const g = this.graph;
    const inputs: string[] = [];
    const inputHashes: Record<string, string> = {};
    for (const p of t.inputs) {
      const h = run ? run.snapshot.get(p) : g.hash[p];
      if (h === undefined) continue;
      const path = g.path(p);
      inputs.push(path);
      inputHashes[path] = h;
    }
    return {
      id: t.id,
      ruleId: t.rule.id,
      stem: t.stem,
      bindings: t.bindings,
      inputs,
      inputHashes,
      outputs: t.outputs.map((o) => g.path(o)),
      pass: run ? run.pass : this.sched.comp(t.comp).pass,
      component: t.comp,
      cyclic: this.sched.comp(t.comp).cyclic,
      run: run ? run.run : 0,
      meta: t.rule.spec.meta,
    };
  }
}

/** What a call inside batch() returns: the batch's own result covers it. */
const NOTHING: ChangeResult = Object.freeze({
  added: Object.freeze([]) as unknown as string[],
  removed: Object.freeze([]) as unknown as string[],
  nowDirty: Object.freeze([]) as unknown as string[],
  cancel: Object.freeze([]) as unknown as string[],
  orphaned: Object.freeze([]) as unknown as string[],
  warnings: Object.freeze([]) as unknown as ChangeResult['warnings'],
});

function emptyResult(): ChangeResult {
  return NOTHING;
}
