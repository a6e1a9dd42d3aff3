import { at } from './checked.js';
import { artefactState, blockedReason } from './explain.js';
import type { Graph } from './graph.js';
import type { Scheduler } from './scheduler.js';
import type { Task } from './task.js';
import type { Trace } from './trace.js';
import type { ArtefactState, GraphState, RuleSpec, TraceRecord } from './types.js';

export type PlanTaskState = 'ready' | 'running' | 'dirty' | 'blocked' | 'pending';
export type PlanComponentState = 'ready' | 'running' | 'waiting' | 'blocked' | 'settling';

export interface PlanJSON {
  /** Components with work pending, dependencies first. */
  readonly components: Array<{
    readonly id: number;
    readonly cyclic: boolean;
    readonly pass: number;
    readonly passLimit: number;
    readonly state: PlanComponentState;
    /** In pass order; `pending` tasks are clean but wait on upstream work that may dirty them. */
    readonly tasks: Array<{ id: string; state: PlanTaskState; blocked?: string }>;
  }>;
  readonly ready: string[];
  readonly running: string[];
}

export interface GraphJSON {
  readonly rules: RuleSpec[];
  readonly artefacts: Array<{
    path: string;
    hash: string | null;
    state: ArtefactState;
    producer: string | null;
  }>;
  readonly tasks: Array<{
    id: string;
    ruleId: string;
    stem: string;
    inputs: string[];
    optionalInputs: string[];
    discovered: string[];
    outputs: string[];
    component: number;
    dirty: boolean;
  }>;
  /** Dependencies first. */
  readonly components: Array<{
    id: number;
    cyclic: boolean;
    tasks: string[];
    /** The pass a cycle is in (0: settled, nothing pending) and how many it may take. */
    pass: number;
    passLimit: number;
  }>;
}

export interface GraphStats {
  /** Paths that exist or are produced by a task. */
  readonly artefacts: number;
  readonly tasks: number;
  /** Artefact → task (input) plus task → artefact (output) edges. */
  readonly edges: number;
  readonly components: number;
  readonly cyclicComponents: number;
  readonly largestComponent: number;
}

function taskState(g: Graph, t: Task, next: Task | undefined): PlanTaskState {
  if (t.running) return 'running';
  if (!t.dirty) return 'pending';
  if (t === next) return 'ready';
  return blockedReason(g, t) === undefined ? 'dirty' : 'blocked';
}

function liveComponents(s: Scheduler, only?: Set<number>): number[] {
  const comps: number[] = [];
  s.comps.forEach((comp, c) => {
    if (comp.members.length && (!only || only.has(c))) comps.push(c);
  });
  return byRank(s, comps);
}

function byRank(s: Scheduler, comps: number[]): number[] {
  return comps.sort((a, b) => s.comp(a).rank - s.comp(b).rank);
}

export function plan(g: Graph, s: Scheduler): PlanJSON {
  const ready: string[] = [];
  const components = byRank(s, [...s.region]).map((c) => {
    const comp = s.comp(c);
    const next = s.dispatchable.has(c) ? s.candidate(c) : undefined;
    if (next) ready.push(next.id);
    const tasks = s.ordered(c).map((idx) => {
      const t = g.task(idx);
      const state = taskState(g, t, next);
      const blocked = state === 'blocked' ? blockedReason(g, t) : undefined;
      return blocked ? { id: t.id, state, blocked } : { id: t.id, state };
    });
    const state: PlanComponentState =
      comp.runningCount > 0
        ? 'running'
        : next
          ? 'ready'
          : comp.waiting > 0
            ? 'waiting'
            : comp.dirtyCount > 0
              ? 'blocked'
              : 'settling';
    return {
      id: c,
      cyclic: comp.cyclic,
      pass: comp.pass,
      passLimit: s.passLimit(c),
      state,
      tasks,
    };
  });
  return { components, ready, running: [...s.running].map((t) => t.id).sort() };
}

type GraphArtefact = GraphJSON['artefacts'][number];
type GraphTask = GraphJSON['tasks'][number];
type GraphComponent = GraphJSON['components'][number];

/** What toJSON and toJSONPieces put in a graph answer, in its order; each item built when asked. */
function graphParts(g: Graph, s: Scheduler) {
  const paths = (ids: readonly number[]) => ids.map((p) => g.path(p));
  const artefactIds: number[] = [];
  g.paths.forEach((_, p) => {
    if (g.hash[p] !== undefined || g.producerOf(p) >= 0) artefactIds.push(p);
  });
  artefactIds.sort((a, b) => (g.path(a) < g.path(b) ? -1 : 1));
  const tasks = [...g.taskById.values()].sort((a, b) => (a.id < b.id ? -1 : 1));
  return {
    rules: [...g.rules.values()].map((r) => r.spec).sort((a, b) => (a.id < b.id ? -1 : 1)),
    artefactIds,
    artefact(p: number): GraphArtefact {
      const prod = g.producerOf(p);
      const path = g.path(p);
      return {
        path,
        hash: g.hash[p] ?? null,
        state: artefactState(g, s, path),
        producer: prod >= 0 ? g.task(prod).id : null,
      };
    },
    tasks,
    task(t: Task): GraphTask {
      return {
        id: t.id,
        ruleId: t.rule.id,
        stem: t.stem,
        inputs: paths(t.required),
        optionalInputs: paths(t.optional),
        discovered: paths(t.discovered),
        outputs: paths(t.outputs),
        component: t.comp,
        dirty: t.dirty,
      };
    },
    components: liveComponents(s),
    component(c: number): GraphComponent {
      return {
        id: c,
        cyclic: s.comp(c).cyclic,
        tasks: s.ordered(c).map((i) => g.task(i).id),
        pass: s.comp(c).pass,
        passLimit: s.passLimit(c),
      };
    },
  };
}

export function toJSON(g: Graph, s: Scheduler): GraphJSON {
  const parts = graphParts(g, s);
  return {
    rules: parts.rules,
    artefacts: parts.artefactIds.map(parts.artefact),
    tasks: parts.tasks.map(parts.task),
    components: parts.components.map(parts.component),
  };
}

/**
 * Items serialised per piece of toJSONPieces: a piece is a few tens of KB (an artefact is ~300
 * bytes of JSON, a task ~800), so its objects and text die young.
 */
const PER_PIECE = { artefacts: 128, tasks: 32, components: 32 } as const;

/**
 * JSON.stringify(toJSON(g, s)) in pieces of a few tens of KB, without the whole answer ever held
 * as objects: at 100k artefacts that answer is ~29 MB of JSON and its objects tens of MB more,
 * kept until V8's next full collection (issue #13). The items are built a piece at a time, the
 * graph read at once: the pieces describe one state of it.
 */
export function toJSONPieces(g: Graph, s: Scheduler): string[] {
  const parts = graphParts(g, s);
  const out = [`{"rules":${JSON.stringify(parts.rules)}`];
  const list = <T, I>(key: string, xs: readonly T[], item: (x: T) => I, per: number) => {
    out.push(`,${JSON.stringify(key)}:[`);
    for (let at = 0; at < xs.length; at += per) {
      const text = JSON.stringify(xs.slice(at, at + per).map(item));
      out.push(`${at ? ',' : ''}${text.slice(1, -1)}`);
    }
    out.push(']');
  };
  list('artefacts', parts.artefactIds, parts.artefact, PER_PIECE.artefacts);
  list('tasks', parts.tasks, parts.task, PER_PIECE.tasks);
  list('components', parts.components, parts.component, PER_PIECE.components);
  out.push('}');
  return out;
}

const COLOURS: Record<string, string> = {
  source: 'white',
  up_to_date: 'palegreen',
  dirty: 'khaki',
  building: 'lightblue',
  failed: 'salmon',
  cancelled: 'plum',
  not_converging: 'orange',
  missing: 'lightgrey',
};

/** Tasks are boxes, artefacts ellipses; each cyclic component is a cluster. */
export function toDOT(g: Graph, s: Scheduler, planOnly: boolean): string {
  const q = (text: string) => JSON.stringify(text);
  const comps = liveComponents(s, planOnly ? s.region : undefined);
  const lines = ['digraph depgraph {', '  rankdir=LR;', '  node [style=filled];'];
  const shown = new Set<number>();
  const artefactNode = (p: number, indent: string) => {
    if (shown.has(p)) return;
    shown.add(p);
    const path = g.path(p);
    const state = artefactState(g, s, path);
    lines.push(
      `${indent}${q(`a:${path}`)} [label=${q(path)}, shape=ellipse, fillcolor=${COLOURS[state]}];`,
    );
  };
  const edges: string[] = [];
  for (const c of comps) {
    const comp = s.comp(c);
    const cluster = comp.cyclic && comp.members.length > 0;
    const indent = cluster ? '    ' : '  ';
    if (cluster) {
      lines.push(
        `  subgraph cluster_${c} {`,
        `    label=${q(`cycle ${c} (pass ${comp.pass}/${s.passLimit(c)})`)};`,
        '    style=dashed;',
      );
    }
    for (const idx of s.ordered(c)) {
      const t = g.task(idx);
      const fill = t.running
        ? 'lightblue'
        : t.failed
          ? 'salmon'
          : t.held
            ? 'plum'
            : t.nc
              ? 'orange'
              : t.dirty
                ? 'khaki'
                : 'palegreen';
      lines.push(`${indent}${q(`t:${t.id}`)} [label=${q(t.id)}, shape=box, fillcolor=${fill}];`);
      for (const o of t.outputs) {
        artefactNode(o, indent);
        edges.push(`  ${q(`t:${t.id}`)} -> ${q(`a:${g.paths[o]}`)};`);
      }
    }
    if (cluster) lines.push('  }');
  }
  for (const c of comps) {
    for (const idx of s.comp(c).members) {
      const t = g.task(idx);
      for (const p of t.inputs) {
        artefactNode(p, '  ');
        const style = t.required.includes(p) ? '' : ' [style=dashed]';
        edges.push(`  ${q(`a:${g.paths[p]}`)} -> ${q(`t:${t.id}`)}${style};`);
      }
    }
  }
  lines.push(...edges, '}');
  return `${lines.join('\n')}\n`;
}

export function exportState(g: Graph): GraphState {
  const artefacts: Record<string, string> = {};
  g.paths.forEach((path, p) => {
    const h = g.hash[p];
    if (h !== undefined) artefacts[path] = h;
  });
  const traces: Record<string, TraceRecord> = {};
  for (const [id, trace] of g.traces) traces[id] = traceRecord(g, trace);
  const rules = [...g.rules.values()].map((r) => r.spec).sort((a, b) => (a.id < b.id ? -1 : 1));
  const projections: Record<string, Record<string, string>> = {};
  for (const [p, byKey] of g.projections) projections[g.path(p)] = Object.fromEntries(byKey);
  return { rules, artefacts, traces, ...(g.projections.size ? { projections } : {}) };
}

/** A trace as persisted: paths, not ids. */
export function traceRecord(g: Graph, trace: Trace): TraceRecord {
  const record = (ids: readonly number[], hashes: readonly string[]) =>
    Object.fromEntries(ids.map((p, i) => [g.path(p), at(hashes, i, 'trace hash')]));
  return {
    inputs: record(trace.inIds, trace.inHashes),
    outputs: record(trace.outIds, trace.outHashes),
    ...(trace.discovered ? { discovered: trace.discovered.map((p) => g.path(p)) } : {}),
  };
}

export function graphStats(g: Graph, s: Scheduler): GraphStats {
  let artefacts = 0;
  for (let p = 0; p < g.paths.length; p++) {
    if (g.available(p)) artefacts++;
  }
  let edges = 0;
  for (const t of g.taskById.values()) edges += t.inputs.length + t.outputs.length;
  let components = 0;
  let cyclicComponents = 0;
  let largestComponent = 0;
  for (const comp of s.comps) {
    const size = comp.members.length;
    if (!size) continue;
    components++;
    if (comp.cyclic) cyclicComponents++;
    largestComponent = Math.max(largestComponent, size);
  }
  return {
    artefacts,
    tasks: g.taskById.size,
    edges,
    components,
    cyclicComponents,
    largestComponent,
  };
}
