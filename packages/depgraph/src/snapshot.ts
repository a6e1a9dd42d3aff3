import { dirtyReason } from './dirty.js';
import { StateCorruptError } from './errors.js';
import type { Graph, HeldInstances } from './graph.js';
import { inputsOf, NONE } from './id-lists.js';
import { checkPath } from './path.js';
import { matchPattern, stemKey } from './pattern.js';
import { type CompiledRule, compileRule } from './rule.js';
import { Task } from './task.js';
import { numbers, type PackedTraces, TRACE_HEAD, traceRecordWords } from './trace-table.js';
import type { GraphState, RuleSpec, TraceRecord } from './types.js';

/**
 * The graph as it is, for a restart that skips forward chaining: every interned path by id, the
 * hashes, the rules, the traces and the tasks at their indices, all by number. Loading one gives
 * the same numbering as the graph it was taken from, so the same components and plans. It also
 * holds everything a GraphState does (snapshotState), for a load whose options would derive
 * different tasks.
 *
 * Record layouts (u32): a trace is task id, #inputs, #outputs, #discovered + 1 (0: not yet
 * split), then (path, hash) per input and per output, then the discovered paths; a task is its
 * index, rule (index into `rules`), id, depth, #required, #optional, #outputs, then the path ids.
 * Paths are path ids (string `p` is path `p`), hashes and ids are string indices. Consumer lists
 * are kept in their order, which decides the order of ready() and of cancellations.
 */
export interface Snapshot {
  readonly strings: readonly string[];
  /** Paths are strings [0, paths). */
  readonly paths: number;
  /** String index + 1 of each path's hash (0: the path does not exist). */
  readonly hashes: Uint32Array;
  readonly rules: readonly RuleSpec[];
  readonly traces: Uint32Array;
  readonly traceCount: number;
  readonly tasks: Uint32Array;
  readonly taskCount: number;
  /** Per path id: how many tasks read it, then their indices, in the graph's own order. */
  readonly consumers: Uint32Array;
  readonly extras: SnapshotExtras;
}

export interface SnapshotExtras extends HeldInstances {
  /** The maxDerivationDepth the tasks were derived with. */
  readonly maxDepth: number;
  /** Projected hashes of current bytes: path → key → hash. */
  readonly projections: Readonly<Record<string, Readonly<Record<string, string>>>>;
}

export const TASK_HEAD = 7;

/**
 * The graph's snapshot. Reads the graph without changing it: traces and consumer lists still
 * packed from the snapshot it was restored from stay so (their records are copied as they are,
 * hashes by string), and the records go straight into typed arrays, not through arrays of
 * numbers (at 100k artefacts both lifted MajorDomo's memory by tens of MB, issue #13).
 */
export function takeSnapshot(g: Graph): Snapshot {
  const strings = [...g.paths];
  const index = new Map<string, number>();
  const ref = (s: string) => {
    let i = index.get(s);
    if (i === undefined) {
      i = strings.length;
      index.set(s, i);
      strings.push(s);
    }
    return i;
  };
  const hashes = new Uint32Array(g.paths.length);
  g.hash.forEach((h, p) => {
    if (h !== undefined) hashes[p] = ref(h) + 1;
  });
  const traces = new Words();
  const packed = g.traces.packedRecords();
  for (const [id, t] of g.traces.held()) {
    if (typeof t === 'number') copyPackedTrace(traces, ref(id), packed, t, ref);
    else {
      traces.push(ref(id));
      traces.push(t.inIds.length);
      traces.push(t.outIds.length);
      traces.push(t.discovered ? t.discovered.length + 1 : 0);
      const pairs = (ids: readonly number[], hashes: readonly string[]) => {
        for (let i = 0; i < ids.length; i++) {
          traces.push(ids[i] ?? 0);
          traces.push(ref(hashes[i] ?? ''));
        }
      };
      pairs(t.inIds, t.inHashes);
      pairs(t.outIds, t.outHashes);
      if (t.discovered) traces.pushAll(t.discovered);
    }
  }
  const rules = [...g.rules.values()];
  const ruleIndex = new Map(rules.map((r, i) => [r.id, i]));
  const tasks = new Words();
  let taskCount = 0;
  for (const t of g.tasks) {
    if (!t) continue;
    taskCount++;
    const { required, optional, outputs } = t;
    tasks.push(t.idx);
    tasks.push(ruleIndex.get(t.rule.id) ?? -1);
    tasks.push(ref(t.id));
    tasks.push(t.depth);
    tasks.push(required.length);
    tasks.push(optional.length);
    tasks.push(outputs.length);
    tasks.pushAll(required);
    tasks.pushAll(optional);
    tasks.pushAll(outputs);
  }
  const consumers = new Words();
  for (let p = 0; p < g.paths.length; p++) {
    const list = g.peekReaders(p);
    consumers.push(list?.length ?? 0);
    if (list) consumers.pushAll(list);
  }
  const projections: Record<string, Record<string, string>> = {};
  for (const [p, byKey] of g.projections) projections[g.path(p)] = Object.fromEntries(byKey);
  return {
    strings,
    paths: g.paths.length,
    hashes,
    rules: rules.map((r) => r.spec),
    traces: traces.done(),
    traceCount: g.traces.size,
    tasks: tasks.done(),
    taskCount,
    consumers: consumers.done(),
    extras: { maxDepth: g.maxDepth, projections, ...g.held() },
  };
}

/** A trace record still packed, as its unpacked trace would be written (hashes by `ref`). */
function copyPackedTrace(
  out: Words,
  id: number,
  { words, strings }: PackedTraces,
  at: number,
  ref: (s: string) => number,
): void {
  const ins = words[at + 1] ?? 0;
  const outs = words[at + 2] ?? 0;
  const disc = words[at + 3] ?? 0;
  out.push(id);
  out.push(ins);
  out.push(outs);
  out.push(disc);
  let i = at + TRACE_HEAD;
  for (const stop = i + 2 * (ins + outs); i < stop; i += 2) {
    out.push(words[i] ?? 0); // a path id: a restored graph keeps the snapshot's
    out.push(ref(strings[words[i + 1] ?? 0] ?? ''));
  }
  for (const stop = i + Math.max(disc - 1, 0); i < stop; i++) out.push(words[i] ?? 0);
}

/** A list of u32 that grows in place (a plain array of numbers costs 2-4 times the bytes). */
class Words {
  private buf = new Uint32Array(1024);
  private n = 0;

  push(v: number): void {
    if (this.n === this.buf.length) {
      const more = new Uint32Array(this.buf.length * 2);
      more.set(this.buf);
      this.buf = more;
    }
    this.buf[this.n++] = v;
  }

  pushAll(vs: ArrayLike<number>): void {
    for (let i = 0; i < vs.length; i++) this.push(vs[i] ?? 0);
  }

  /** The words pushed (a view: the list is not used after). */
  done(): Uint32Array {
    return this.buf.subarray(0, this.n);
  }
}

/**
 * Fills an empty graph from a snapshot. Every path is checked as a path from outside is, every
 * rule compiled, and every record checked against its rule; a snapshot that contradicts itself
 * throws StateCorruptError. Returns the tasks that are dirty, for the caller to mark (the
 * scheduler's part); their dirtiness is not left to the batch, which would unpack every trace.
 */
export function loadSnapshot(snap: Snapshot, g: Graph): Task[] {
  // One function per pass over the records: V8 optimises a long-running loop on the spot, and a
  // function whose later loops have not run yet is thrown back to the interpreter when it gets
  // there; small functions keep each loop's optimised code.
  restorePaths(snap, g);
  restoreProjections(snap, g);
  const rules = restoreRules(snap, g);
  const traceOf = restoreTraces(snap, g);
  const traceAt = restoreTasks(snap, g, rules, traceOf);
  if (!g.restoreConsumers(snap.consumers)) {
    throw new StateCorruptError('consumers', 'the lists do not match the tasks inputs');
  }
  for (const [id, ruleId] of snap.extras.shadowed) {
    if (!g.rules.has(ruleId)) throw new StateCorruptError('extras', `${id} names no rule`);
  }
  g.restoreHeld(snap.extras);
  return dirtyTasks(snap, g, traceAt);
}

function restorePaths({ strings, hashes, paths }: Snapshot, g: Graph): void {
  for (let p = 0; p < paths; p++) {
    const path = strings[p] ?? '';
    checkPath(path);
    g.add(path);
    const h = hashes[p] ?? 0;
    if (h > 0) g.hash[p] = nonEmpty(strings[h - 1] ?? '', 'hashes', path);
  }
  // A path given twice took one id in the path table for both.
  if (g.pathCount() !== paths) throw new StateCorruptError('paths', 'a path appears twice');
}

function restoreProjections(snap: Snapshot, g: Graph): void {
  for (const [path, byKey] of Object.entries(snap.extras.projections)) {
    const p = g.id(path);
    if (p === undefined || g.hash[p] === undefined)
      throw new StateCorruptError('projections', `${path} is not an existing artefact`);
    g.projections.set(p, new Map(Object.entries(byKey)));
  }
}

function restoreRules(snap: Snapshot, g: Graph): CompiledRule[] {
  return snap.rules.map((spec) => {
    const rule = compileRule(spec);
    if (g.rules.has(rule.id)) throw new StateCorruptError('rules', `${rule.id} appears twice`);
    g.registerRule(rule);
    return rule;
  });
}

/**
 * Restores the traces, packed; returns each one's offset by the string index of its task id (-1:
 * none), for restoreTasks to find a task's trace by its id's index, not by the id (a string hashed
 * and looked up per task). A task id traced twice is the last record's, as in the trace table.
 */
function restoreTraces({ traces, strings }: Snapshot, g: Graph): Int32Array {
  g.traces.restorePacked({ words: traces, strings });
  const traceOf = new Int32Array(strings.length).fill(-1);
  for (let at = 0; at < traces.length; at += traceRecordWords(traces, at)) {
    const id = traces[at] ?? 0;
    g.traces.setPacked(strings[id] ?? '', at);
    traceOf[id] = at;
  }
  return traceOf;
}

/**
 * Restores the tasks (`traceOf`: restoreTraces'); returns each one's packed trace offset by task
 * index (-1: none), for dirtyTasks not to look every task's id up again.
 */
function restoreTasks(
  snap: Snapshot,
  g: Graph,
  rules: readonly CompiledRule[],
  traceOf: Int32Array,
): Int32Array {
  const { tasks, traces, strings } = snap;
  const pairs = new Int32Array(2 * snap.taskCount); // task index, trace offset
  let n = 0;
  for (let at = 0; at < tasks.length; ) {
    const rule = rules[tasks[at + 1] ?? -1];
    const idAt = tasks[at + 2] ?? 0;
    const id = strings[idAt] ?? '';
    const nReq = tasks[at + 4] ?? 0;
    const nOpt = tasks[at + 5] ?? 0;
    const nOut = tasks[at + 6] ?? 0;
    const start = at + TASK_HEAD;
    const required = numbers(tasks, start, nReq);
    const optional = numbers(tasks, start + nReq, nOpt);
    const outputs = numbers(tasks, start + nReq + nOpt, nOut);
    if (
      !rule ||
      nReq !== rule.required.length ||
      nOpt !== rule.optional.length ||
      nOut === 0 ||
      nOut > rule.outputs.length ||
      !(
        id.length > rule.id.length &&
        id.charCodeAt(rule.id.length) === 58 /* : */ &&
        id.startsWith(rule.id)
      )
    ) {
      throw new StateCorruptError('tasks', `task ${id} does not fit its rule`);
    }
    const t = new Task(
      tasks[at] ?? 0,
      id,
      rule,
      bindingsOf(rule, id, g.path(required[0] ?? 0)),
      required,
      optional,
      outputs,
      tasks[at + 3] ?? 0,
    );
    const trace = traceOf[idAt] ?? -1;
    t.inputs = trace < 0 ? inputsOf(required, optional, NONE) : t.restorePacked(traces, trace);
    if (!g.restoreTask(t)) throw new StateCorruptError('tasks', `task ${id} overlaps another`);
    if (trace >= 0 && n < pairs.length) {
      pairs[n++] = t.idx;
      pairs[n++] = trace;
    }
    at = start + nReq + nOpt + nOut;
  }
  const traceAt = new Int32Array(g.tasks.length).fill(-1);
  for (let i = 0; i < n; i += 2) traceAt[pairs[i] ?? 0] = pairs[i + 1] ?? -1;
  return traceAt;
}

function dirtyTasks(snap: Snapshot, g: Graph, traceAt: Int32Array): Task[] {
  const dirty: Task[] = [];
  for (const t of g.tasks) if (t && isDirty(g, snap, t, traceAt[t.idx] ?? -1)) dirty.push(t);
  return dirty;
}

/**
 * dirtyReason(g, t) !== undefined, on the packed trace while it is one: in a snapshot equal
 * strings are one string, so a hash matches exactly when its string index does (the path's is
 * `hashes[p] - 1`). A task whose rule projects inputs takes the general way; so does one without
 * a packed trace (`at` -1).
 */
function isDirty(g: Graph, snap: Snapshot, t: Task, at: number): boolean {
  if (at < 0 || t.projected) return dirtyReason(g, t) !== undefined;
  const { traces: words, hashes } = snap;
  const ins = words[at + 1] ?? 0;
  const outs = words[at + 2] ?? 0;
  const first = at + TRACE_HEAD;
  for (const p of t.inputs) {
    let was = 0;
    for (let i = 0; i < ins; i++) {
      if (words[first + 2 * i] === p) {
        was = (words[first + 2 * i + 1] ?? 0) + 1;
        break;
      }
    }
    if (was !== hashes[p]) return true;
  }
  for (let i = 0, o = first + 2 * ins; i < outs; i++, o += 2) {
    if ((words[o + 1] ?? 0) + 1 !== hashes[words[o] ?? 0]) return true;
  }
  return false;
}

/**
 * A task's placeholder bindings, from its first input, when it has other placeholders than
 * {stem}: checked against the stem of its id. Undefined for a rule with none or only {stem}:
 * the task makes them from its stem when they are first read (Task.bindings).
 */
function bindingsOf(
  rule: CompiledRule,
  id: string,
  first: string,
): Record<string, string> | undefined {
  const { names } = rule;
  if (names.length === 0 && id.length === rule.id.length + 1) return undefined;
  if (names.length === 1 && names[0] === 'stem') return undefined;
  const stem = id.slice(rule.id.length + 1);
  const bindings = matchPattern(rule.required[0], first);
  if (!bindings || stemKey(rule.names, bindings) !== stem) {
    throw new StateCorruptError('tasks', `${rule.id}:${stem} does not match its first input`);
  }
  return bindings;
}

function nonEmpty(hash: string, field: string, where: string): string {
  if (hash.length === 0) throw new StateCorruptError(field, `an empty hash for ${where}`);
  return hash;
}

/** What the snapshot holds as a GraphState: for fromState, when its tasks cannot be reused. */
export function snapshotState(snap: Snapshot): GraphState {
  const str = (s: number) => snap.strings[s] ?? '';
  const artefacts: Record<string, string> = {};
  snap.hashes.forEach((h, p) => {
    if (h > 0) artefacts[str(p)] = str(h - 1);
  });
  const traces: Record<string, TraceRecord> = {};
  const t = snap.traces;
  for (let at = 0; at < t.length; ) {
    const [id = 0, ins = 0, outs = 0, disc = 0] = t.subarray(at, at + TRACE_HEAD);
    at += TRACE_HEAD;
    const record = (n: number) => {
      const out: Record<string, string> = {};
      for (let i = 0; i < n; i++, at += 2) out[str(t[at] ?? 0)] = str(t[at + 1] ?? 0);
      return out;
    };
    const inputs = record(ins);
    const outputs = record(outs);
    const discovered = disc > 0 ? Array.from(t.subarray(at, at + disc - 1), str) : undefined;
    at += Math.max(disc - 1, 0);
    traces[str(id)] = { inputs, outputs, ...(discovered ? { discovered } : {}) };
  }
  const { projections } = snap.extras;
  return {
    rules: snap.rules,
    artefacts,
    traces,
    ...(Object.keys(projections).length ? { projections } : {}),
  };
}
