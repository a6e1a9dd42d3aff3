import { GraphInvariantError, got } from './checked.js';
import { inputsOf, unique } from './id-lists.js';
import { extOf, isNormalPath } from './path.js';
import { fillPattern, matchPattern, type Pattern, stemKey } from './pattern.js';
import type { CompiledRule } from './rule.js';
import { pushTo, type Slot, SlotIndex } from './slot-index.js';
import { beats, Task } from './task.js';
import type { Trace } from './trace.js';
import { TraceTable } from './trace-table.js';
import type { GraphWarning } from './types.js';

/** Structural events, so the scheduler can keep components and its region current. */
export interface GraphListener {
  taskAdded(task: Task): void;
  /** Before the task's edges are removed. */
  taskRemoving(task: Task): void;
  /** A discovered dependency linked `to` to the producer `from` (called after the link). */
  edgeAdded(from: Task, to: Task): void;
  edgeRemoved(from: Task, to: Task): void;
  /** A path's hash was set or deleted. */
  hashChanged(p: number): void;
}

/** What one public call changed, filled in as the graph works. */
export interface ChangeLog {
  readonly added: string[];
  readonly removed: string[];
  readonly orphaned: string[];
  readonly cancel: string[];
  readonly warnings: GraphWarning[];
  /** Tasks whose dirtiness must be evaluated again before the call returns. */
  readonly recheck: Set<Task>;
}

export function newLog(): ChangeLog {
  return { added: [], removed: [], orphaned: [], cancel: [], warnings: [], recheck: new Set() };
}

/** See Graph.held(). */
export interface HeldInstances {
  readonly shadowed: ReadonlyArray<readonly [string, string, Record<string, string>]>;
  readonly tooDeep: readonly string[];
}

/**
 * Artefacts (interned paths), rules and the task instances forward chaining derives from them.
 * A task exists while each required input exists or is the output of another task; removing one
 * cascades to tasks that needed its missing outputs. Task ids are `${ruleId}:${stem}`.
 */
export class Graph {
  readonly paths: string[] = [];
  /** Current comparison hash; undefined when the artefact does not exist. */
  readonly hash: (string | undefined)[] = [];
  /**
   * Projected hashes of a path's current bytes, by projection key: forgotten when its hash
   * changes, so they never outlive the bytes they were computed from.
   */
  readonly projections = new Map<number, Map<string, string>>();
  /** Producing task index, or -1. */
  readonly producer: number[] = [];
  /** Tasks reading the path as a required, optional or discovered input (see readers()). */
  private readonly consumers: (number[] | undefined)[] = [];
  /**
   * Consumer lists restored from a snapshot stay in its words until first read: `packedAt[p]` is
   * where path p's list starts (its count), -1 once it is a list of its own.
   */
  private packedReaders: Uint32Array = new Uint32Array(0);
  private packedAt = new Int32Array(0);
  readonly tasks: (Task | undefined)[] = [];
  readonly taskById = new Map<string, Task>();
  readonly rules = new Map<string, CompiledRule>();
  /** By task id; kept when a task goes away so a returning chef's rule does not rebuild. */
  readonly traces = new TraceTable();
  log: ChangeLog = newLog();
  private readonly ids = new Map<string, number>();
  /** Path ids by extension, and the rules' input slots: built when first needed (see indexes). */
  private extIndex: Map<string, number[]> | undefined;
  private slotIndex: SlotIndex | undefined;
  /** Instances that lost an output to a task of higher precedence; retried when tasks go. */
  private readonly shadowed = new Map<
    string,
    { rule: CompiledRule; bindings: Record<string, string> }
  >();
  private retryShadowed = false;
  private readonly queue: number[] = [];
  private readonly tooDeep = new Set<string>();

  constructor(
    private readonly listener: GraphListener,
    readonly maxDepth: number,
  ) {}

  /**
   * The last path id() found, and its id: a caller asking several things of one path (MajorDomo
   * asks its producer, then its state, of each of 100,000s of records after a restart) looks it
   * up once, and one going through paths in id order (those records come so: a snapshot stores
   * them in the graph's path order) finds each next one without a map lookup. Ids never change
   * once interned, so it never goes stale.
   */
  private lastPath: string | undefined;
  private lastId = -1;

  id(path: string): number | undefined {
    if (path === this.lastPath) return this.lastId;
    if (this.paths[this.lastId + 1] === path) {
      this.lastPath = path;
      return ++this.lastId;
    }
    const id = this.ids.get(path);
    if (id !== undefined) {
      this.lastPath = path;
      this.lastId = id;
    }
    return id;
  }

  /** Distinct paths interned (add() of a path twice would leave it below paths.length). */
  pathCount(): number {
    return this.ids.size;
  }

  /** The path of an interned id. */
  path(p: number): string {
    const path = this.paths[p];
    if (path === undefined) throw new GraphInvariantError('path id', p);
    return path;
  }

  /** Index of the task producing `p`, or -1. */
  producerOf(p: number): number {
    const prod = this.producer[p];
    if (prod === undefined) throw new GraphInvariantError('path id', p);
    return prod;
  }

  /** A live task by index (a removed task's index is a bug here). */
  task(idx: number): Task {
    const t = this.tasks[idx];
    if (t === undefined) throw new GraphInvariantError('task index', idx);
    return t;
  }

  /** Indices of the tasks reading path `p` (undefined when none ever did). */
  readers(p: number): readonly number[] | undefined {
    const at = this.packedAt[p] ?? -1;
    if (at >= 0) {
      const n = this.packedReaders[at] ?? 0;
      const list = new Array<number>(n);
      for (let i = 0; i < n; i++) list[i] = this.packedReaders[at + 1 + i] ?? 0;
      this.consumers[p] = list;
      this.packedAt[p] = -1;
    }
    return this.consumers[p];
  }

  /**
   * readers(p), leaving a list restored from a snapshot packed (a view into its words): for a
   * read that does not keep it, as taking a snapshot (which reads every path's).
   */
  peekReaders(p: number): ArrayLike<number> | undefined {
    const at = this.packedAt[p] ?? -1;
    if (at < 0) return this.consumers[p];
    return this.packedReaders.subarray(at + 1, at + 1 + (this.packedReaders[at] ?? 0));
  }

  /** Tasks reading path `p` (an interned id), to change in place. */
  private consumersOf(p: number): number[] {
    this.readers(p);
    const list = this.consumers[p];
    if (list === undefined) throw new GraphInvariantError('consumers of path id', p);
    return list;
  }

  private addReader(p: number, t: number): void {
    this.readers(p);
    const list = this.consumers[p];
    if (list) list.push(t);
    else this.consumers[p] = [t];
  }

  intern(path: string): number {
    return this.ids.get(path) ?? this.add(path);
  }

  /** Interns a path known to be new (the caller looked it up already). */
  add(path: string): number {
    const id = this.paths.length;
    this.ids.set(path, id);
    this.paths.push(path);
    this.hash.push(undefined);
    this.producer.push(-1);
    this.consumers.push(undefined);
    if (this.extIndex) pushTo(this.extIndex, extOf(path), id);
    return id;
  }

  /**
   * The indexes forward chaining searches, built on first use: a graph loaded from a snapshot
   * may plan and build without ever matching a pattern. Built in id and rule order, they are
   * what adding each path and rule in turn would have made.
   */
  private byExt(): Map<string, number[]> {
    if (!this.extIndex) {
      const index = new Map<string, number[]>();
      this.paths.forEach((path, id) => {
        pushTo(index, extOf(path), id);
      });
      this.extIndex = index;
    }
    return this.extIndex;
  }

  private slots(): SlotIndex {
    this.slotIndex ??= new SlotIndex(this.rules.values());
    return this.slotIndex;
  }

  available(p: number): boolean {
    return this.hash[p] !== undefined || this.producerOf(p) >= 0;
  }

  /** Records a hash; a path that becomes available may instantiate tasks. */
  setHash(p: number, hash: string): void {
    const was = this.available(p);
    if (this.hash[p] !== hash) {
      this.projections.delete(p);
      this.listener.hashChanged(p);
    }
    this.hash[p] = hash;
    if (!was) {
      this.queue.push(p);
      this.settle();
    }
  }

  deleteHash(p: number): void {
    this.listener.hashChanged(p);
    this.hash[p] = undefined;
    this.projections.delete(p);
    if (this.producerOf(p) < 0) {
      this.makeUnavailable(p);
      this.settle();
    }
  }

  addRule(rule: CompiledRule): void {
    this.registerRule(rule);
    const first = rule.required[0];
    for (const q of this.candidates(first)) {
      if (!this.available(q)) continue;
      const bindings = matchPattern(first, this.path(q));
      if (bindings) this.tryInstantiate(rule, bindings, q);
    }
    this.settle();
  }

  /** Makes the rule known and indexes its inputs, without instantiating it (see addRule). */
  registerRule(rule: CompiledRule): void {
    this.rules.set(rule.id, rule);
    this.slotIndex?.add(rule);
  }

  removeRule(ruleId: string): void {
    const rule = this.rules.get(ruleId);
    if (!rule) return;
    this.rules.delete(ruleId);
    this.slotIndex?.remove(rule);
    for (const [id, s] of this.shadowed) if (s.rule === rule) this.shadowed.delete(id);
    // A scan rather than an index per rule: rules are retired rarely, tasks restored often.
    const tasks = this.tasks.filter((t): t is Task => t?.rule === rule);
    for (const t of tasks) if (t.alive) this.removeTask(t);
    this.settle();
  }

  /** Replaces a task's discovered dependencies, linking it to their producers. */
  setDiscovered(t: Task, discovered: readonly number[]): void {
    const before = t.inputs;
    t.discovered = unique(discovered);
    t.inputs = inputsOf(t.required, t.optional, t.discovered);
    const after = t.inputs;
    const inBefore = has(before);
    const inAfter = has(after);
    for (const p of before) {
      if (inAfter(p)) continue;
      const list = this.consumersOf(p);
      list.splice(list.indexOf(t.idx), 1);
      const prod = this.producerOf(p);
      if (prod >= 0) this.listener.edgeRemoved(this.task(prod), t);
    }
    for (const p of after) {
      if (inBefore(p)) continue;
      this.addReader(p, t.idx);
      const prod = this.producerOf(p);
      if (prod >= 0) this.listener.edgeAdded(this.task(prod), t);
    }
    this.log.recheck.add(t);
  }

  /**
   * The hash task `t` compares for input `p`: the projected one when its rule projects `p` and
   * the projection of the current bytes is known, else the whole hash.
   */
  compareHash(t: Task, p: number): string | undefined {
    const key = t.projected?.get(p);
    return (key !== undefined && this.projections.get(p)?.get(key)) || this.hash[p];
  }

  /** Records projected hashes of `p`'s current bytes; consumers projecting it are rechecked. */
  setProjections(p: number, projections: Readonly<Record<string, string>>): void {
    let known = this.projections.get(p);
    for (const [key, h] of Object.entries(projections)) {
      if (known?.get(key) === h) continue;
      if (!known) {
        known = new Map();
        this.projections.set(p, known);
      }
      known.set(key, h);
      for (const c of this.readers(p) ?? []) {
        const t = this.task(c);
        if (t.projected?.get(p) === key) this.log.recheck.add(t);
      }
    }
  }

  /** The declared-or-discovered split a stored trace needs once its task exists. */
  resolveDiscovered(t: Task, trace: Trace): readonly number[] {
    if (trace.discovered === undefined) {
      trace.discovered = trace.inIds.filter(
        (p) => !t.required.includes(p) && !t.optional.includes(p),
      );
    }
    return trace.discovered;
  }

  private candidates(pattern: Pattern): Iterable<number> {
    if (!pattern.placeholders) {
      const id = this.ids.get(pattern.source);
      return id === undefined ? [] : [id];
    }
    if (pattern.ext !== undefined) return this.byExt().get(pattern.ext) ?? [];
    return this.paths.keys();
  }

  /** Drains the forward-chaining queue, then gives shadowed instances their chance again. */
  private settle(): void {
    for (;;) {
      for (let p = this.queue.pop(); p !== undefined; p = this.queue.pop()) {
        if (this.available(p)) this.onAvailable(p);
      }
      if (!this.retryShadowed) return;
      this.retryShadowed = false;
      const waiting = [...this.shadowed].sort(([a], [b]) => (a < b ? -1 : 1));
      for (const [id, { rule, bindings }] of waiting) {
        if (this.stillBeaten(id, rule, bindings)) continue;
        this.shadowed.delete(id);
        this.tryInstantiate(rule, bindings);
      }
    }
  }

  private stillBeaten(id: string, rule: CompiledRule, bindings: Record<string, string>): boolean {
    return rule.outputs.some((pattern) => {
      const o = this.ids.get(fillPattern(pattern, bindings));
      const prod = o === undefined ? -1 : this.producerOf(o);
      return prod >= 0 && beats(this.task(prod), { rule, id });
    });
  }

  private onAvailable(p: number): void {
    if (this.rules.size === 0) return;
    const path = this.path(p);
    for (const slots of this.slots().candidates(path, extOf(path))) this.matchSlots(slots, path, p);
  }

  private matchSlots(slots: Slot[] | undefined, path: string, p: number): void {
    if (!slots) return;
    for (const { rule, input } of slots) {
      const pattern = rule.required[input];
      if (pattern === undefined) throw new GraphInvariantError(`input of rule ${rule.id}`, input);
      const bindings = matchPattern(pattern, path);
      if (!bindings) continue;
      if (input === 0 || pattern.names.length === rule.names.length) {
        this.tryInstantiate(rule, bindings, input === 0 ? p : undefined);
        continue;
      }
      // This input binds only some placeholders: the first input names the instances.
      const first = rule.required[0];
      for (const q of this.candidates(first)) {
        if (!this.available(q)) continue;
        const full = matchPattern(first, this.path(q));
        if (full && pattern.names.every((n) => full[n] === bindings[n])) {
          this.tryInstantiate(rule, full, q);
        }
      }
    }
  }

  /** `first`: id of the first required input, when the caller matched it already. */
  private tryInstantiate(
    rule: CompiledRule,
    bindings: Record<string, string>,
    first?: number,
  ): void {
    const stem = stemKey(rule.names, bindings);
    const id = `${rule.id}:${stem}`;
    if (this.taskById.has(id) || this.shadowed.has(id)) return;
    const required = new Array<number>(rule.required.length);
    let depth = 1;
    for (let i = 0; i < rule.required.length; i++) {
      const pattern = rule.required[i];
      if (pattern === undefined) throw new GraphInvariantError(`input of rule ${rule.id}`, i);
      const p =
        i === 0 && first !== undefined ? first : this.ids.get(fillPattern(pattern, bindings));
      if (p === undefined || !this.available(p)) return;
      required[i] = p;
      const prod = this.producerOf(p);
      if (prod >= 0) depth = Math.max(depth, this.task(prod).depth + 1);
    }
    if (depth > this.maxDepth) {
      if (!this.tooDeep.has(id)) {
        this.tooDeep.add(id);
        this.warn(
          'DEPGRAPH_DERIVATION_TOO_DEEP',
          `${id} not created: it is ${depth} generated steps from a source (limit ${this.maxDepth}); a rule probably consumes its own outputs`,
          [],
          [id],
        );
      }
      return;
    }
    // A placeholder bound to "." or ".." text could make a path outside the project.
    const outPaths = rule.outputs.map((o) => fillPattern(o, bindings));
    const optPaths = rule.optional.map((o) => fillPattern(o, bindings));
    for (const path of outPaths) if (!isNormalPath(path)) return;
    for (const path of optPaths) if (!isNormalPath(path)) return;
    const outputs = unique(outPaths.map((o) => this.intern(o)));
    let losers: Set<Task> | undefined;
    for (const o of outputs) {
      const prod = this.producerOf(o);
      if (prod < 0) continue;
      const other = this.task(prod);
      if (beats(other, { rule, id })) {
        this.shadowed.set(id, { rule, bindings });
        this.warn(
          'DEPGRAPH_OUTPUT_CONFLICT',
          `${this.paths[o]} is produced by ${other.id}; ${id} is not used (lowest rule id wins)`,
          [this.path(o)],
          [other.id, id],
        );
        return;
      }
      losers ??= new Set();
      losers.add(other);
    }
    for (const loser of losers ?? []) {
      this.warn(
        'DEPGRAPH_OUTPUT_CONFLICT',
        `${id} takes outputs of ${loser.id}, which is no longer used (lowest rule id wins)`,
        loser.outputs.filter((o) => outputs.includes(o)).map((o) => this.path(o)),
        [id, loser.id],
      );
      if (loser.alive) this.removeTask(loser);
      this.shadowed.set(loser.id, { rule: loser.rule, bindings: { ...loser.bindings } });
    }
    if (losers && !required.every((p) => this.available(p))) return;
    const optional = optPaths.map((o) => this.intern(o));
    const t = new Task(this.tasks.length, id, rule, bindings, required, optional, outputs, depth);
    for (const o of outputs) if (!this.available(o)) this.queue.push(o);
    this.link(t);
  }

  /**
   * Puts back a task as a snapshot recorded it (see snapshot.ts), at its index, without forward
   * chaining: the snapshot was closed under it when taken. Returns false when the slot or an
   * output is taken already (the snapshot contradicts itself).
   */
  restoreTask(t: Task): boolean {
    if (this.tasks[t.idx] !== undefined || this.taskById.has(t.id)) return false;
    for (const o of t.outputs) if (this.producer[o] !== -1) return false;
    this.link(t, true);
    return true;
  }

  /**
   * The consumer lists of restored tasks, as a snapshot recorded them (per path: count, task
   * indices), after the last restoreTask; each becomes a list when first read. False unless each
   * holds the tasks that read the path: a count and two sums of their indices must agree, and a
   * list with other members or repeats does not give all three (cheaper than a membership test).
   */
  restoreConsumers(lists: Uint32Array): boolean {
    const n = this.paths.length;
    const { count, sum, squares } = readerSums(this.tasks, n);
    const packedAt = new Int32Array(n).fill(-1);
    let at = 0;
    for (let p = 0; p < n; p++) {
      const size = lists[at] ?? -1;
      if (size !== count[p] || at + 1 + size > lists.length) return false;
      if (size > 0) packedAt[p] = at;
      let s = 0;
      let q = 0;
      for (let i = at + 1; i <= at + size; i++) {
        const v = (lists[i] ?? 0) + 1;
        s += v;
        q += v * v;
      }
      if (s !== sum[p] || q !== squares[p]) return false;
      at += 1 + size;
    }
    this.packedReaders = lists;
    this.packedAt = packedAt;
    return at === lists.length;
  }

  /** Restores what a snapshot recorded of instances that are not tasks now. */
  restoreHeld(held: HeldInstances): void {
    for (const [id, ruleId, bindings] of held.shadowed) {
      this.shadowed.set(id, { rule: got(this.rules, ruleId, 'rule of shadowed'), bindings });
    }
    for (const id of held.tooDeep) this.tooDeep.add(id);
  }

  /** Instances that lost an output conflict, and those refused as too deep (for snapshots). */
  held(): HeldInstances {
    return {
      shadowed: [...this.shadowed].map(([id, { rule, bindings }]) => [id, rule.id, bindings]),
      tooDeep: [...this.tooDeep],
    };
  }

  /**
   * Enters a new task in the tables and links it to its inputs, outputs and trace. A `restored`
   * task comes with its discovered inputs and its inputs set, and its consumer entries and
   * dirtiness are the restorer's (restoreConsumers, snapshot.ts).
   */
  private link(t: Task, restored = false): void {
    const { rule } = t;
    if (rule.projections.length) {
      const { bindings } = t;
      t.projected = new Map(
        rule.projections.map(({ pattern, key }) => [
          this.intern(fillPattern(pattern, bindings)),
          key,
        ]),
      );
    }
    this.tasks[t.idx] = t;
    this.taskById.set(t.id, t);
    if (!restored) {
      const trace = this.traces.get(t.id);
      t.discovered = trace ? this.resolveDiscovered(t, trace) : [];
      t.inputs = inputsOf(t.required, t.optional, t.discovered);
      for (const p of t.inputs) this.addReader(p, t.idx);
    }
    for (const o of t.outputs) this.producer[o] = t.idx;
    if (!restored) {
      this.log.added.push(t.id);
      this.log.recheck.add(t);
    }
    this.listener.taskAdded(t);
  }

  private removeTask(t: Task): void {
    this.listener.taskRemoving(t);
    if (t.running) this.log.cancel.push(t.id);
    t.alive = false;
    t.running = undefined;
    this.tasks[t.idx] = undefined;
    this.taskById.delete(t.id);
    this.log.recheck.delete(t);
    for (const p of t.inputs) {
      const list = this.consumersOf(p);
      list.splice(list.indexOf(t.idx), 1);
    }
    this.log.removed.push(t.id);
    this.retryShadowed = true;
    const lost: number[] = [];
    for (const o of t.outputs) {
      if (this.producer[o] !== t.idx) continue;
      this.producer[o] = -1;
      if (this.hash[o] !== undefined) this.log.orphaned.push(this.path(o));
      else lost.push(o);
    }
    for (const o of lost) this.makeUnavailable(o);
  }

  /** A path neither exists nor is produced: tasks that require it go. */
  private makeUnavailable(p: number): void {
    if (this.available(p)) return;
    const users = (this.readers(p) ?? [])
      .map((c) => this.task(c))
      .filter((t) => t.required.includes(p));
    for (const t of users) if (t.alive) this.removeTask(t);
  }

  private warn(code: GraphWarning['code'], message: string, paths: string[], tasks: string[]) {
    this.log.warnings.push({ code, message, paths, tasks });
  }
}

/** Per path: how many tasks read it, and the sums of their indices + 1 and of its squares. */
function readerSums(tasks: readonly (Task | undefined)[], paths: number) {
  const count = new Int32Array(paths);
  const sum = new Float64Array(paths);
  const squares = new Float64Array(paths);
  for (const t of tasks) {
    if (!t) continue;
    const v = t.idx + 1;
    for (const p of t.inputs) {
      count[p] = (count[p] ?? 0) + 1;
      sum[p] = (sum[p] ?? 0) + v;
      squares[p] = (squares[p] ?? 0) + v * v;
    }
  }
  return { count, sum, squares };
}

function has(list: readonly number[]): (p: number) => boolean {
  if (list.length <= 64) return (p) => list.includes(p);
  const set = new Set(list);
  return (p) => set.has(p);
}
