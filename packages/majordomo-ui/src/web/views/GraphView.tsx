import {
  Background,
  Controls,
  type Edge,
  Handle,
  MarkerType,
  type Node,
  type NodeProps,
  Position,
  ReactFlow,
  useReactFlow,
} from '@xyflow/react';
import { createContext, memo, useCallback, useContext, useEffect, useMemo, useRef } from 'react';
import { collapseGraph, countStates, isFolderKey, worstState } from '../collapse.js';
import { useSelected, useSnapshot } from '../context.js';
import { type LaidNode, layoutGraph, shapeKey } from '../layout.js';
import { href, type Route, setParam } from '../route.js';
import { type Snapshot, STATE_LABEL, shownState } from '../store.js';
import type { ArtefactStatus, GraphJSON } from '../types.js';
import { ArtefactPanel } from './ArtefactPanel.js';
import { ParamSelect, PathSearch, StateSelect } from './ParamControls.js';

/** The graph's grouping choices (route parameter `group`). */
const GROUPINGS = [
  ['none', 'none'],
  ['folder', 'by folder and rule'],
] as const;

/**
 * What every node of the view shares: it changes with the URL and the graph's shape, not with
 * states (each node reads its own state from the store, so an event redraws only the nodes it
 * changes, not all of them).
 */
interface Look {
  query: string;
  state: string;
  selected: string;
  /** Collapsed folders (key `dir/`) → their artefacts, when the graph is grouped. */
  folders: ReadonlyMap<string, readonly string[]>;
}
const LookContext = createContext<Look | null>(null);

/** The graph view's look; its node components are only rendered inside its provider. */
function useLook(): Look {
  const look = useContext(LookContext);
  if (!look) throw new Error('a graph node was rendered outside the graph view (no LookContext)');
  return look;
}

type NodeData = { key: string };

const running = new WeakMap<readonly Snapshot['builds'][number][], Set<string>>();
/** The tasks with a build in flight, made once per list of builds. */
function runningTasks(s: Snapshot): Set<string> {
  let set = running.get(s.builds);
  if (!set) {
    set = new Set(s.builds.map((b) => b.taskId));
    running.set(s.builds, set);
  }
  return set;
}

function matches(look: Look, path: string, state: ArtefactStatus): boolean {
  if (look.state && look.state !== state) return false;
  if (look.query && !path.toLowerCase().includes(look.query.toLowerCase())) return false;
  return true;
}

/** Where a cycle's read-back leaves and enters a node: below it, so it loops under the row. */
function BackHandles() {
  return (
    <>
      <Handle
        type="source"
        id="back"
        position={Position.Bottom}
        isConnectable={false}
        className="back"
      />
      <Handle
        type="target"
        id="back"
        position={Position.Bottom}
        isConnectable={false}
        className="back"
      />
    </>
  );
}

const ArtefactNode = memo(function ArtefactNode({ data }: NodeProps<Node<NodeData>>) {
  const look = useLook();
  const state = useSelected((s) => shownState(s, data.key));
  const dim = (look.query || look.state) && !matches(look, data.key, state);
  return (
    <div
      className={`node art s-${state}${dim ? ' dim' : ''}${look.selected === data.key ? ' sel' : ''}`}
      data-path={data.key}
      data-state={state}
      title={`${data.key}: ${STATE_LABEL[state]}`}
    >
      <Handle type="target" position={Position.Left} isConnectable={false} />
      <span className="label">{data.key}</span>
      <span className="badge">{STATE_LABEL[state]}</span>
      <Handle type="source" position={Position.Right} isConnectable={false} />
      <BackHandles />
    </div>
  );
});

/** A collapsed folder: its artefacts counted by state, coloured by the worst; click opens it. */
const FolderNode = memo(function FolderNode({ data }: NodeProps<Node<NodeData>>) {
  const look = useLook();
  const paths = look.folders.get(data.key) ?? [];
  // The counts as one string (a value that compares equal while they stay the same).
  const summary = useSelected((s) =>
    [...countStates(paths, (p) => shownState(s, p))].map(([k, n]) => `${k}=${n}`).join(','),
  );
  const counts = new Map(
    summary
      .split(',')
      .filter(Boolean)
      .map((kv) => {
        const [k, n] = kv.split('=');
        return [k as ArtefactStatus, Number(n)] as const;
      }),
  );
  const state = worstState(counts.keys());
  const unsettled = [...counts]
    .filter(([s]) => s !== 'up_to_date' && s !== 'source')
    .map(([s, n]) => `${n} ${STATE_LABEL[s]}`);
  const dim = look.query && !paths.some((p) => p.toLowerCase().includes(look.query.toLowerCase()));
  return (
    <div
      className={`node art folder s-${state}${dim ? ' dim' : ''}`}
      data-folder={data.key}
      data-state={state}
      data-count={paths.length}
      title={`${data.key}: ${paths.length} artefacts; click to show them`}
    >
      <Handle type="target" position={Position.Left} isConnectable={false} />
      <span className="label">
        {data.key} · {paths.length}
      </span>
      <span className="badge">{unsettled.length ? unsettled.join(', ') : STATE_LABEL[state]}</span>
      <Handle type="source" position={Position.Right} isConnectable={false} />
      <BackHandles />
    </div>
  );
});

const TaskNode = memo(function TaskNode({ data }: NodeProps<Node<NodeData>>) {
  const running = useSelected((s) => runningTasks(s).has(data.key));
  return (
    <div className={`node task${running ? ' running' : ''}`} data-task={data.key} title={data.key}>
      <Handle type="target" position={Position.Left} isConnectable={false} />
      <span className="label">{data.key}</span>
      <Handle type="source" position={Position.Right} isConnectable={false} />
      <BackHandles />
    </div>
  );
});

const CycleNode = memo(function CycleNode({ data }: NodeProps<Node<NodeData>>) {
  const id = Number(data.key);
  const pass = useSelected((s) => s.passes.get(id)?.pass ?? 0);
  const passLimit = useSelected((s) => s.passes.get(id)?.limit ?? 0);
  const active = useSelected((s) => s.plan?.components.some((c) => c.id === id) ?? false);
  const p = pass || passLimit ? { pass, limit: passLimit } : undefined;
  const limit = p?.limit || '?';
  const text = !p?.pass
    ? `cycle · settled · limit ${limit} passes`
    : `cycle · pass ${p.pass}/${limit}${active ? '' : ' · settled'}`;
  return (
    <div
      className="cycle"
      data-cycle={data.key}
      data-pass={p?.pass ?? 0}
      data-limit={p?.limit ?? 0}
    >
      <span className="cycle-label">{text}</span>
    </div>
  );
});

/** Fits the view again when the graph's shape changes (not its states: no jumps on updates). */
function FitOnShape({ shape, large }: { shape: string; large: boolean }) {
  const flow = useReactFlow();
  useEffect(() => {
    if (!shape) return;
    // A large graph opens at a readable zoom on its first layers (only what is in view is
    // drawn); zooming out shows more.
    const t = requestAnimationFrame(
      () =>
        void (large ? flow.setViewport({ x: 0, y: 0, zoom: 0.75 }) : flow.fitView({ duration: 0 })),
    );
    return () => cancelAnimationFrame(t);
  }, [flow, shape, large]);
  return null;
}

/** Above this many nodes only those in view are drawn. */
const DRAW_VISIBLE_ONLY = 1000;

const PRO_OPTIONS = { hideAttribution: true };

const nodeTypes = { artefact: ArtefactNode, folder: FolderNode, task: TaskNode, cycle: CycleNode };

function toFlow(n: LaidNode): Node<NodeData> {
  const folder = n.kind === 'artefact' && isFolderKey(n.key);
  return {
    id: n.id,
    type: folder ? 'folder' : n.kind,
    position: { x: n.x, y: n.y },
    data: { key: n.key },
    width: n.width,
    height: n.height,
    ...(n.kind === 'cycle' ? { style: { width: n.width, height: n.height }, zIndex: -1 } : {}),
    ...(n.parent ? { parentId: n.parent, extent: 'parent' as const } : {}),
    draggable: false,
    connectable: false,
    selectable: n.kind === 'artefact',
    focusable: n.kind === 'artefact',
    ariaLabel:
      n.kind === 'artefact' ? (folder ? `folder ${n.key}` : `artefact ${n.key}`) : undefined,
  };
}

/** Above this many nodes (artefacts + tasks) the graph shows only what needs attention. */
export const LARGE_GRAPH = 2000;
/** At most this many artefacts are drawn in the large graph's focused view. */
const FOCUS_MAX = 400;

const SETTLED = new Set<string>(['source', 'up_to_date']);

/**
 * Level of detail for a large graph: what was asked for (the artefacts the search and the state
 * filter match, and the selected one) or, when nothing was, those that are not settled (queued,
 * building, failed, stale, not converging, missing); the tasks next to them and those tasks'
 * inputs and outputs. Everything else is left out (and counted), so the page stays responsive
 * at 10,000 artefacts and more. (A search's focus keeps its shape while builds run: states
 * change the nodes' colours, not which nodes are drawn, so nothing is laid out again.)
 */
function focused(
  snap: Snapshot,
  g: GraphJSON,
  query: string,
  state: string,
  selected: string,
): { graph: GraphJSON; hidden: number; capped: boolean } {
  const q = query.toLowerCase();
  const asked = q !== '' || state !== '';
  const focus = new Set<string>();
  let capped = false;
  for (const a of g.artefacts) {
    const hit =
      a.path === selected ||
      (asked
        ? (q === '' || a.path.toLowerCase().includes(q)) &&
          (state === '' || shownState(snap, a.path) === state)
        : !SETTLED.has(shownState(snap, a.path)));
    if (!hit) continue;
    if (focus.size >= FOCUS_MAX) {
      capped = true;
      break;
    }
    focus.add(a.path);
  }
  const tasks = g.tasks.filter(
    (t) => t.outputs.some((o) => focus.has(o)) || t.inputs.some((i) => focus.has(i)),
  );
  const keep = new Set(focus);
  for (const t of tasks) for (const p of [...t.inputs, ...t.outputs]) keep.add(p);
  const ids = new Set(tasks.map((t) => t.id));
  const graph: GraphJSON = {
    rules: g.rules,
    artefacts: g.artefacts.filter((a) => keep.has(a.path)),
    tasks,
    components: g.components
      .map((c) => ({ ...c, tasks: c.tasks.filter((t) => ids.has(t)) }))
      .filter((c) => c.tasks.length > 0),
  };
  return { graph, hidden: g.artefacts.length - graph.artefacts.length, capped };
}

const NO_FOLDERS: ReadonlyMap<string, readonly string[]> = new Map();

export function GraphView({ route }: { route: Route }) {
  const snap = useSnapshot();
  const full = snap.graph;
  const query = route.params.get('q') ?? '';
  const state = route.params.get('state') ?? '';
  const selected = route.params.get('sel') ?? '';
  const group = route.params.get('group');
  // A large graph opened on nothing in particular (no search, filter or selection) shows its
  // shape: grouped by folder and rule. `group=none` or `group=folder` in the URL decides.
  const grouped = group
    ? group === 'folder'
    : !query &&
      !state &&
      !selected &&
      !!full &&
      full.artefacts.length + full.tasks.length > LARGE_GRAPH;
  const openParam = route.params.get('open') ?? '';
  const open = useMemo(() => new Set(openParam.split(',').filter(Boolean)), [openParam]);
  const collapsed = useMemo(
    () => (full && grouped ? collapseGraph(full, open) : undefined),
    [full, grouped, open],
  );
  const shown = collapsed?.graph ?? full;
  const large = !!shown && shown.artefacts.length + shown.tasks.length > LARGE_GRAPH;
  // A search's focus depends on the paths alone: worked out again only when the graph or the
  // URL changes, not on every batch of state events (10,000 artefacts read each time).
  const byState = !query || !!state;
  // biome-ignore lint/correctness/useExhaustiveDependencies: the states count only when the focus is by state
  const view = useMemo(
    () => (shown && large ? focused(snap, shown, query, state, selected) : undefined),
    [shown, large, query, state, selected, byState ? snap : undefined],
  );
  const graph = view?.graph ?? shown;
  const setOpen = (dirs: Set<string>) => setParam(route, 'open', [...dirs].sort().join(','));
  const key = graph ? shapeKey(graph) : '';
  // biome-ignore lint/correctness/useExhaustiveDependencies: laid out again only when the shape changes
  const flow = useMemo(() => {
    if (!graph) return { nodes: [], edges: [] };
    const l = layoutGraph(graph);
    const edges: Edge[] = l.edges.map((e) => ({
      id: e.id,
      source: e.source,
      target: e.target,
      className: `edge-${e.kind}${e.back ? ' edge-back' : ''}`,
      // A cycle's read-back runs against the layers: from below its source to below its
      // target, drawn above the cycle's group.
      ...(e.back
        ? {
            type: 'smoothstep',
            sourceHandle: 'back',
            targetHandle: 'back',
            zIndex: 1,
            // Close under the row, inside the cycle's box.
            pathOptions: { offset: 8 },
          }
        : {}),
      markerEnd: { type: MarkerType.ArrowClosed, width: 14, height: 14 },
      focusable: false,
      selectable: false,
    }));
    return { nodes: l.nodes.map(toFlow), edges };
  }, [key]);
  const folders = collapsed?.folders ?? NO_FOLDERS;
  const look = useMemo(
    () => ({ query, state, selected, folders }),
    [query, state, selected, folders],
  );
  // ReactFlow's props stay the same objects from event to event, so it draws nothing again.
  const at = useRef({ route, open });
  at.current = { route, open };
  const onNodeClick = useCallback((_e: unknown, n: Node) => {
    const { route: r, open: o } = at.current;
    const key = (n.data as NodeData).key;
    if (n.type === 'artefact') setParam(r, 'sel', key);
    else if (n.type === 'folder')
      setParam(r, 'open', [...new Set([...o, key.slice(0, -1)])].sort().join(','));
  }, []);

  return (
    <div className="with-panel">
      <section className="graph-view" aria-label="dependency graph">
        <div className="toolbar">
          <PathSearch route={route} value={query} />
          <StateSelect route={route} value={state} />
          <ParamSelect
            route={route}
            param="group"
            label="Group"
            value={grouped ? 'folder' : 'none'}
            options={GROUPINGS}
            all={false}
          />
          {grouped &&
            [...open].sort().map((dir) => (
              <button
                key={dir}
                type="button"
                className="chip"
                data-open-folder={dir}
                title={`collapse ${dir}/ again`}
                onClick={() => setOpen(new Set([...open].filter((d) => d !== dir)))}
              >
                {dir}/ ×
              </button>
            ))}
          <Legend />
          <span className="muted" data-graph-size>
            {full ? `${full.artefacts.length} artefacts, ${full.tasks.length} tasks` : 'loading…'}
          </span>
          {view && (
            <span className="muted" data-graph-focus>
              Large graph: showing {graph?.artefacts.length} artefacts,{' '}
              {query || state ? 'those the search and filter match' : 'those not up to date'}
              {selected ? ' and the selected one' : ''}, with their neighbours ({view.hidden} left
              out{view.capped ? `; the first ${FOCUS_MAX} only` : ''}). Search, filter or group by
              folder to see others.
            </span>
          )}
        </div>
        {/* A focused artefact node opens with Enter (xyflow's own keyboard selection needs
            nodes it controls; these are ours). */}
        <div
          className="flow"
          role="application"
          aria-label="graph: Tab to a node, Enter to open it"
          onKeyDown={(e) => {
            const id = (e.target as HTMLElement)
              .closest('.react-flow__node')
              ?.getAttribute('data-id');
            if (e.key !== 'Enter' || !id?.startsWith('a:')) return;
            const key = id.slice(2);
            if (isFolderKey(key)) setOpen(new Set([...open, key.slice(0, -1)]));
            else setParam(route, 'sel', key);
          }}
        >
          <LookContext.Provider value={look}>
            <ReactFlow
              nodes={flow.nodes}
              edges={flow.edges}
              nodeTypes={nodeTypes}
              fitView
              minZoom={0.05}
              nodesDraggable={false}
              nodesConnectable={false}
              onlyRenderVisibleElements={flow.nodes.length > DRAW_VISIBLE_ONLY}
              proOptions={PRO_OPTIONS}
              onNodeClick={onNodeClick}
            >
              <FitOnShape
                // A focus view is fitted when what was asked for changes, not each time an
                // artefact enters or leaves it (that would move the view under the reader).
                shape={
                  view
                    ? `focus ${JSON.stringify([query, state, selected, openParam])}`
                    : `${key}${selected ? ' panel' : ''}`
                }
                large={flow.nodes.length > DRAW_VISIBLE_ONLY}
              />
              <Background />
              <Controls showInteractive={false} />
            </ReactFlow>
          </LookContext.Provider>
        </div>
      </section>
      {selected && (
        <ArtefactPanel path={selected} close={href('graph', { q: query, state })} view="graph" />
      )}
    </div>
  );
}

function Legend() {
  return (
    <ul className="legend" aria-label="colours">
      {(Object.keys(STATE_LABEL) as ArtefactStatus[]).map((s) => (
        <li key={s} className={`s-${s}`}>
          {STATE_LABEL[s]}
        </li>
      ))}
    </ul>
  );
}
