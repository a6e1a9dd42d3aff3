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

export function layoutGraph(g: GraphJSON): Layout {
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
  const edges: LaidEdge[] = [];
  const addEdge = (source: string, target: string, kind: LaidEdge['kind']) => {
    if (!dg.hasNode(source) || !dg.hasNode(target)) return;
    const id = `${source}->${target}`;
    if (dg.hasEdge(source, target)) return;
    dg.setEdge(source, target);
    edges.push({ id, source, target, kind });
  };
  for (const t of g.tasks) {
    const tid = `t:${t.id}`;
    for (const i of t.inputs) {
      const kind = t.optionalInputs.includes(i)
        ? 'optional'
        : t.discovered.includes(i)
          ? 'discovered'
          : 'input';
      addEdge(`a:${i}`, tid, kind);
    }
    for (const o of t.outputs) addEdge(tid, `a:${o}`, 'output');
  }
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
  return { nodes, edges };
}
