// Lays the dependency graph out in layers (dagre, left to right): artefacts and the tasks
// between them as nodes, each cycle (a cyclic component) as a compound group around its tasks
// and their outputs. Positions only: states are applied by the view without a new layout.
import dagre from '@dagrejs/dagre';
import type { GraphJSON } from './types.js';

export interface LaidNode {
  id: string;
  kind: 'artefact' | 'task' | 'cycle';
  /** The artefact's path, the task's id, or the component id for a cycle. */
  key: string;
  x: number;
  y: number;
  width: number;
  height: number;
  parent?: string;
}

export interface LaidEdge {
  id: string;
  source: string;
  target: string;
  kind: 'input' | 'optional' | 'discovered' | 'output';
  /** The edge closes a cycle (a read-back, drawn back against the layers' direction). */
  back?: true;
}

export interface Layout {
  nodes: LaidNode[];
  edges: LaidEdge[];
}

// Labels are 12px monospace (7.3 px a character); an artefact also has room for its state badge.
const textWidth = (s: string, extra: number) => Math.min(460, Math.round(s.length * 7.3) + extra);

/** A key that changes only when the graph's shape does (not its states). */
export function shapeKey(g: GraphJSON): string {
  return JSON.stringify([
    g.artefacts.map((a) => a.path),
    g.tasks.map((t) => [t.id, t.inputs, t.optionalInputs, t.discovered, t.outputs]),
    g.components.filter((c) => c.cyclic).map((c) => c.tasks),
  ]);
}

/** Above this many nodes (artefacts + tasks) the fast layout replaces dagre. */
export const DAGRE_MAX_NODES = 500;

/** Lays `g` out: dagre while it is small enough, else the fast layered layout. */
export function layoutGraph(g: GraphJSON): Layout {
  performance.mark('cp:layout-start');
  const l = g.artefacts.length + g.tasks.length > DAGRE_MAX_NODES ? fastLayout(g) : dagreLayout(g);
  performance.mark('cp:layout-end');
  return l;
}

type Task = GraphJSON['tasks'][number];

/**
 * Every input of a task with how it is one: the graph lists required, optional (a cycle's
 * read-back, such as a table of contents) and discovered inputs apart; each is an edge.
 */
export function inputsOf(t: Task): Array<[string, Exclude<LaidEdge['kind'], 'output'>]> {
  const out = new Map<string, Exclude<LaidEdge['kind'], 'output'>>();
  for (const i of t.inputs) out.set(i, 'input');
  for (const i of t.optionalInputs) if (!out.has(i)) out.set(i, 'optional');
  for (const i of t.discovered) if (!out.has(i)) out.set(i, 'discovered');
  return [...out];
}

interface Edges {
  edges: LaidEdge[];
  groupOf: Map<string, string>;
}

function edgesOf(g: GraphJSON, has: (id: string) => boolean): Edges {
  const groupOf = new Map<string, string>();
  const members = new Map<string, string>();
  for (const c of g.components) if (c.cyclic) for (const t of c.tasks) members.set(t, `c:${c.id}`);
  const edges: LaidEdge[] = [];
  const seen = new Set<string>();
  const add = (source: string, target: string, kind: LaidEdge['kind']) => {
    const id = `${source}->${target}`;
    if (!has(source) || !has(target) || seen.has(id)) return;
    seen.add(id);
    edges.push({ id, source, target, kind });
  };
  for (const t of g.tasks) {
    const tid = `t:${t.id}`;
    const gid = members.get(t.id);
    if (gid) groupOf.set(tid, gid);
    for (const [i, kind] of inputsOf(t)) add(`a:${i}`, tid, kind);
    for (const o of t.outputs) {
      if (gid) groupOf.set(`a:${o}`, gid);
      add(tid, `a:${o}`, 'output');
    }
  }
  return { edges, groupOf };
}

/** Each node's successors and predecessors along `edges`. */
function adjacency(edges: readonly LaidEdge[]) {
  const out = new Map<string, string[]>();
  const preds = new Map<string, string[]>();
  const push = (m: Map<string, string[]>, k: string, v: string) => {
    const list = m.get(k);
    if (list) list.push(v);
    else m.set(k, [v]);
  };
  for (const e of edges) {
    push(out, e.source, e.target);
    push(preds, e.target, e.source);
  }
  return { out, preds };
}

/**
 * Topological order by iterative DFS, started from the sources (nodes nothing points at) before
 * any other node, so the edges found to close a cycle (`back`, `source->target`) are a cycle's
 * read-backs (out/x.toc → render:x), not the edges from its sources into it.
 */
export function topoOrder(
  ids: Iterable<string>,
  out: ReadonlyMap<string, readonly string[]>,
  preds: ReadonlyMap<string, readonly string[]>,
): { order: string[]; back: Set<string> } {
  const all = [...ids];
  const roots = [...all.filter((id) => !preds.get(id)?.length), ...all];
  const order: string[] = [];
  const state = new Map<string, 1 | 2>();
  const back = new Set<string>();
  for (const root of roots) {
    if (state.has(root)) continue;
    const stack: Array<[string, number]> = [[root, 0]];
    state.set(root, 1);
    for (let top = stack.at(-1); top; top = stack.at(-1)) {
      const next = (out.get(top[0]) ?? [])[top[1]++];
      if (next === undefined) {
        stack.pop();
        state.set(top[0], 2);
        order.push(top[0]);
      } else if (!state.has(next)) {
        state.set(next, 1);
        stack.push([next, 0]);
      } else if (state.get(next) === 1) back.add(`${top[0]}->${next}`);
    }
  }
  order.reverse();
  return { order, back };
}

const ROW = 44;
const GAP_X = 46;
/** A layer taller than this many rows wraps into columns side by side. */
const WRAP = 60;

/**
 * A layered layout in linear time for large graphs: layers by longest path from the sources
 * (edges that close a cycle are left out), nodes in a layer ordered by where their
 * predecessors are, tall layers wrapped into columns; a cycle's group is the box around its
 * members. Less tidy than dagre, but 10,000 nodes take milliseconds, not minutes.
 */
export function fastLayout(g: GraphJSON): Layout {
  const size = new Map<string, { w: number; h: number }>();
  for (const a of g.artefacts) size.set(`a:${a.path}`, { w: textWidth(a.path, 110), h: 34 });
  for (const t of g.tasks) size.set(`t:${t.id}`, { w: textWidth(t.id, 24), h: 24 });
  const { edges, groupOf } = edgesOf(g, (id) => size.has(id));
  /** Every laid-out node came from `size`'s keys. */
  const sizeOf = (id: string) => {
    const s = size.get(id);
    if (!s) throw new Error(`layout: no size for node ${id}`);
    return s;
  };
  const { out, preds } = adjacency(edges);
  const { order, back } = topoOrder(size.keys(), out, preds);
  const rank = new Map<string, number>();
  for (const id of order) {
    let r = 0;
    for (const p of preds.get(id) ?? [])
      if (!back.has(`${p}->${id}`)) r = Math.max(r, (rank.get(p) ?? 0) + 1);
    rank.set(id, r);
  }
  const layers: string[][] = [];
  // rank was filled in topological order, which its iteration keeps.
  for (const [id, r] of rank) {
    const layer = layers[r] ?? [];
    layers[r] = layer;
    layer.push(id);
  }
  // Order each layer by the mean position of its predecessors (sources: group, then name).
  const pos = new Map<string, number>();
  layers.forEach((layer, r) => {
    const key = (id: string) => {
      const ps = (preds.get(id) ?? []).flatMap((p) => pos.get(p) ?? []);
      return ps.length ? ps.reduce((a, p) => a + p, 0) / ps.length : Number.NaN;
    };
    const keyed = layer.map((id, i) => ({ id, k: r === 0 ? i : key(id), i }));
    keyed.sort((a, b) =>
      Number.isNaN(a.k) || Number.isNaN(b.k)
        ? Number.isNaN(a.k)
          ? Number.isNaN(b.k)
            ? a.i - b.i
            : 1
          : -1
        : a.k - b.k || a.i - b.i,
    );
    const sorted = keyed.map((x) => x.id);
    layers[r] = sorted;
    sorted.forEach((id, i) => {
      pos.set(id, i);
    });
  });
  const abs = new Map<string, { x: number; y: number; w: number; h: number }>();
  let x = 16;
  for (const layer of layers) {
    for (let start = 0; start < layer.length; start += WRAP) {
      const column = layer.slice(start, start + WRAP);
      const width = Math.max(...column.map((id) => sizeOf(id).w));
      for (const [i, id] of column.entries()) {
        const s = sizeOf(id);
        abs.set(id, { x, y: 16 + i * ROW + (ROW - s.h) / 2, w: s.w, h: s.h });
      }
      x += width + GAP_X;
    }
  }
  const nodes: LaidNode[] = [];
  const boxes = new Map<string, { x0: number; y0: number; x1: number; y1: number }>();
  for (const [id, gid] of groupOf) {
    const p = abs.get(id);
    if (!p) continue;
    const b = boxes.get(gid) ?? { x0: p.x, y0: p.y, x1: p.x + p.w, y1: p.y + p.h };
    boxes.set(gid, {
      x0: Math.min(b.x0, p.x),
      y0: Math.min(b.y0, p.y),
      x1: Math.max(b.x1, p.x + p.w),
      y1: Math.max(b.y1, p.y + p.h),
    });
  }
  for (const [gid, b] of boxes)
    nodes.push({
      id: gid,
      kind: 'cycle',
      key: gid.slice(2),
      x: b.x0 - 12,
      y: b.y0 - 34,
      width: b.x1 - b.x0 + 24,
      height: b.y1 - b.y0 + 46,
    });
  for (const [id, p] of abs) {
    const gid = groupOf.get(id);
    const box = gid ? boxes.get(gid) : undefined;
    nodes.push({
      id,
      kind: id.startsWith('a:') ? 'artefact' : 'task',
      key: id.slice(2),
      x: box ? p.x - (box.x0 - 12) : p.x,
      y: box ? p.y - (box.y0 - 34) : p.y,
      width: p.w,
      height: p.h,
      ...(gid && box ? { parent: gid } : {}),
    });
  }
  return { nodes, edges: marked(edges, back) };
}

/** `edges` with those in `back` marked as such. */
function marked(edges: LaidEdge[], back: ReadonlySet<string>): LaidEdge[] {
  return edges.map((e) => (back.has(e.id) ? { ...e, back: true } : e));
}

function dagreLayout(g: GraphJSON): Layout {
  const dg = new dagre.graphlib.Graph({ compound: true, multigraph: false });
  dg.setGraph({ rankdir: 'LR', nodesep: 18, ranksep: 46, edgesep: 8, marginx: 16, marginy: 16 });
  dg.setDefaultEdgeLabel(() => ({}));
  const groupOf = new Map<string, string>();
  for (const c of g.components) {
    if (!c.cyclic) continue;
    const gid = `c:${c.id}`;
    dg.setNode(gid, { label: gid, paddingTop: 28 } as never);
    for (const t of c.tasks) groupOf.set(`t:${t}`, gid);
    for (const t of g.tasks)
      if (c.tasks.includes(t.id)) for (const o of t.outputs) groupOf.set(`a:${o}`, gid);
  }
  for (const a of g.artefacts)
    dg.setNode(`a:${a.path}`, { width: textWidth(a.path, 110), height: 34 });
  for (const t of g.tasks) dg.setNode(`t:${t.id}`, { width: textWidth(t.id, 24), height: 24 });
  // Every edge is drawn; those that close a cycle are left out of dagre's ranking (its own
  // cycle breaking may pick the edge from the cycle's source instead of its read-back).
  const { edges } = edgesOf(g, (id) => dg.hasNode(id));
  const { out, preds } = adjacency(edges);
  const { back } = topoOrder(dg.nodes(), out, preds);
  for (const e of edges) if (!back.has(e.id)) dg.setEdge(e.source, e.target);
  for (const [child, parent] of groupOf) if (dg.hasNode(child)) dg.setParent(child, parent);
  dagre.layout(dg);

  const nodes: LaidNode[] = [];
  // Groups first: a child is placed relative to its group, which must come before it.
  for (const c of g.components) {
    if (!c.cyclic) continue;
    const n = dg.node(`c:${c.id}`);
    if (!n) continue;
    nodes.push({
      id: `c:${c.id}`,
      kind: 'cycle',
      key: String(c.id),
      x: n.x - n.width / 2,
      y: n.y - n.height / 2 - 14,
      width: n.width,
      height: n.height + 14,
    });
  }
  const placed = (id: string, kind: LaidNode['kind'], key: string) => {
    const n = dg.node(id);
    const parent = groupOf.get(id);
    const p = parent ? dg.node(parent) : undefined;
    const x = n.x - n.width / 2;
    const y = n.y - n.height / 2;
    nodes.push({
      id,
      kind,
      key,
      x: p ? x - (p.x - p.width / 2) : x,
      y: p ? y - (p.y - p.height / 2 - 14) : y,
      width: n.width,
      height: n.height,
      ...(parent ? { parent } : {}),
    });
  };
  for (const a of g.artefacts) placed(`a:${a.path}`, 'artefact', a.path);
  for (const t of g.tasks) placed(`t:${t.id}`, 'task', t.id);
  return { nodes, edges: marked(edges, back) };
}
