// The page's copy of the project: loaded from the REST API, then kept current by the event
// stream. Artefact states are applied from their events at once (the colour change is the
// point); the graph, plan, builds and tasks are re-read shortly after the events that move them.
import type { Api } from './api.js';
import { followEvents, type StreamState } from './sse.js';
import type {
  ArtefactRecord,
  ArtefactStatus,
  Build,
  BusEvent,
  GraphJSON,
  GraphState,
  PlanJSON,
  TaskRecord,
  TaskState,
} from './types.js';

/** What the page shows for an artefact: its record's status, `building` while its task runs. */
export type Shown = ArtefactStatus;

export interface Snapshot {
  readonly records: ReadonlyMap<string, ArtefactRecord>;
  readonly graph: GraphJSON | null;
  /** The graph's state of each artefact, by path. */
  readonly graphStates: ReadonlyMap<string, GraphState>;
  /** Task id → its component, from the graph. */
  readonly components: ReadonlyMap<string, number>;
  readonly plan: PlanJSON | null;
  readonly builds: readonly Build[];
  readonly tasks: readonly TaskRecord[];
  /** Runner task state by build id, from task.state events and task records. */
  readonly taskStates: ReadonlyMap<string, TaskState>;
  /** What each build built (`rule:stem`, with its pass inside a cycle), from build.requested. */
  readonly buildNames: ReadonlyMap<string, string>;
  /** The latest pass seen of each component (by id), with its limit. */
  readonly passes: ReadonlyMap<number, { pass: number; limit: number }>;
  readonly stream: StreamState;
  readonly streamDetail?: string;
  /** Events received since the page loaded. */
  readonly events: number;
  readonly error?: string;
}

type Part = 'graph' | 'plan' | 'builds' | 'tasks' | 'records';
const DELAY: Record<Part, number> = { graph: 250, plan: 150, builds: 100, tasks: 150, records: 0 };
/**
 * A part is read again no sooner than this many times the page's own work on its last read took
 * (reading the body, parsing and applying it; not the wait for MajorDomo's answer, which costs
 * the page no frames): a large project's graph (megabytes) is then re-read every second or two
 * while builds run, not four times a second, and the page keeps its frames. States still
 * arrive at once, as events.
 */
const COST_FACTOR = 5;
/**
 * The longest a part waits to be read again, whatever its last read cost: one slow read (a
 * busy machine) must not leave the page behind for minutes.
 */
const MAX_DELAY = 5_000;

/** A batch of events waits at most this many times what the last one cost to apply and render. */
const FLUSH_FACTOR = 3;
/** The longest a batch of events waits after the last, whatever that one cost. */
const MAX_FLUSH_GAP = 250;

/**
 * The time since `start` once the render a store change asked for has run: React renders a
 * change from outside its own events in a microtask queued as the listeners are called, so a
 * microtask queued after them runs after that render.
 */
function afterRender(start: number): Promise<number> {
  return new Promise((resolve) => queueMicrotask(() => resolve(performance.now() - start)));
}

const fromGraph: Record<GraphState, ArtefactStatus> = {
  source: 'source',
  up_to_date: 'up_to_date',
  dirty: 'stale',
  building: 'building',
  failed: 'failed',
  cancelled: 'cancelled',
  not_converging: 'not_converging',
  missing: 'missing',
};

export class ProjectStore {
  #snap: Snapshot = {
    records: new Map(),
    graph: null,
    graphStates: new Map(),
    components: new Map(),
    plan: null,
    builds: [],
    tasks: [],
    taskStates: new Map(),
    passes: new Map(),
    buildNames: new Map(),
    stream: 'connecting',
    events: 0,
  };
  readonly #listeners = new Set<() => void>();
  readonly #timers = new Map<Part, ReturnType<typeof setTimeout>>();
  /** Parts being read now; one read of a part at a time, so an older answer never lands last. */
  readonly #reading = new Set<Part>();
  /** Parts asked for again while being read: read once more when that read ends. */
  readonly #again = new Set<Part>();
  /** The graph's tasks by id, as last read. */
  #tasksById: ReadonlyMap<string, GraphJSON['tasks'][number]> = new Map();
  /** How long the page's own work on the last read of each part took (ms). */
  readonly #cost = new Map<Part, number>();
  readonly #abort = new AbortController();
  /** Called when the event stream refuses the token. */
  onRefused: (message: string) => void = () => {};

  constructor(readonly api: Api) {}

  get = (): Snapshot => this.#snap;

  subscribe = (l: () => void): (() => void) => {
    this.#listeners.add(l);
    return () => this.#listeners.delete(l);
  };

  #set(change: Partial<Snapshot>): void {
    this.#snap = { ...this.#snap, ...change };
    for (const l of this.#listeners) l();
  }

  start(): void {
    void followEvents({
      token: this.api.token,
      signal: this.#abort.signal,
      onEvent: (e) => this.receive(e),
      onState: (stream, detail) => {
        this.#set({ stream, streamDetail: detail });
        // Whatever happened while the stream was down is read again.
        if (stream === 'live') for (const p of Object.keys(DELAY) as Part[]) this.refresh(p, 0);
      },
      onRefused: (_status, message) => this.onRefused(message),
    });
  }

  stop(): void {
    this.#abort.abort();
    for (const t of this.#timers.values()) clearTimeout(t);
  }

  /**
   * Re-reads one part after `delay` ms (by default its usual delay, or COST_FACTOR times its
   * last read's cost if that is longer, at most MAX_DELAY); calls in between are folded into one
   * read, and a call during a read asks for one more read after it.
   */
  refresh(part: Part, delay?: number): void {
    if (this.#timers.has(part)) return;
    if (this.#reading.has(part)) {
      this.#again.add(part);
      return;
    }
    const wait =
      delay ??
      Math.min(MAX_DELAY, Math.max(DELAY[part], COST_FACTOR * (this.#cost.get(part) ?? 0)));
    this.#timers.set(
      part,
      setTimeout(() => {
        this.#timers.delete(part);
        this.#reading.add(part);
        this.#load(part)
          .then((cost) => this.#cost.set(part, cost))
          .catch((err: Error) => this.#set({ error: `${part}: ${err.message}` }))
          .finally(() => {
            this.#reading.delete(part);
            if (this.#again.delete(part) && !this.#abort.signal.aborted) this.refresh(part);
          });
      }, wait),
    );
  }

  /**
   * GETs `path` and hands its body to `apply`; resolves to the page's own work in ms (the body
   * read and parsed, applied, and the render that caused).
   */
  async #read<T>(path: string, apply: (body: T) => void): Promise<number> {
    const res = await this.api.response(path);
    const start = performance.now();
    apply((await res.json()) as T);
    return afterRender(start);
  }

  /** Reads one part; resolves to the page's own work on it (ms). */
  #load(part: Part): Promise<number> {
    switch (part) {
      case 'records':
        return this.#read<ArtefactRecord[]>('/api/artefacts', (list) => {
          performance.mark('cp:records');
          this.#set({ records: new Map(list.map((r) => [r.path, r])), error: undefined });
        });
      case 'graph':
        performance.mark('cp:graph-request');
        return this.#read<GraphJSON>('/api/graph', (graph) => {
          performance.mark('cp:graph-response');
          const passes = new Map(this.#snap.passes);
          for (const c of graph.components) {
            const limit = c.passLimit ?? passes.get(c.id)?.limit ?? 0;
            // A settled cycle (pass 0) keeps showing the passes its last round took.
            const seen = passes.get(c.id)?.pass ?? 0;
            passes.set(c.id, { pass: c.pass ? c.pass : seen, limit });
          }
          this.#tasksById = new Map(graph.tasks.map((t) => [t.id, t]));
          this.#set({
            graph,
            passes,
            graphStates: new Map(graph.artefacts.map((a) => [a.path, a.state])),
            components: new Map(graph.tasks.map((t) => [t.id, t.component])),
          });
        });
      case 'plan':
        return this.#read<PlanJSON>('/api/plan', (plan) => {
          const passes = new Map(this.#snap.passes);
          for (const c of plan.components)
            if (c.pass > 0) passes.set(c.id, { pass: c.pass, limit: c.passLimit });
          this.#set({ plan, passes });
        });
      case 'builds':
        return this.#read<Build[]>('/api/builds', (builds) => this.#set({ builds }));
      case 'tasks':
        return this.#read<TaskRecord[]>('/api/tasks?limit=500', (tasks) => {
          const taskStates = new Map(this.#snap.taskStates);
          for (const t of [...tasks].reverse())
            if (t.task.buildId) taskStates.set(t.task.buildId, t.state);
          this.#set({ tasks, taskStates });
        });
    }
  }

  /**
   * Whether a build result changes the graph's shape: an output the graph does not hold yet,
   * or (a success) discovered inputs other than those its task has.
   */
  #reshapes(body: Record<string, unknown>): boolean {
    const s = this.#snap;
    const outputs = Object.keys((body.outputs ?? {}) as Record<string, unknown>);
    if (outputs.some((p) => !s.graphStates.has(p))) return true;
    // Only a success records what a build discovered.
    if (body.status !== 'succeeded') return false;
    const task = this.#tasksById.get(String(body.taskId));
    if (!task) return true;
    const found = [...new Set((body.discovered ?? []) as string[])].sort();
    const known = [...new Set(task.discovered)].sort();
    return found.length !== known.length || found.some((p, i) => p !== known[i]);
  }

  #cyclic(component: number): boolean {
    return this.#snap.graph?.components.some((c) => c.id === component && c.cyclic) ?? false;
  }

  #queue: BusEvent[] = [];
  #flushing = false;
  #lastFlush = 0;
  /** What applying the last batch cost: the store's work and the render it caused (ms). */
  #flushCost = 0;

  /**
   * Takes one event of the project's stream (start() feeds them). Events are applied in
   * batches: at once after a quiet spell, else 16 ms after the last batch or FLUSH_FACTOR times
   * what the last one cost to apply and render, if longer: a burst costs one copy and one render
   * a frame however fast the events come, and on a busy machine (or a large graph) the page
   * renders less often rather than in frames that never end.
   */
  receive(e: BusEvent): void {
    this.#queue.push(e);
    if (this.#flushing) return;
    this.#flushing = true;
    const gap = Math.min(MAX_FLUSH_GAP, Math.max(16, FLUSH_FACTOR * this.#flushCost));
    const wait = Math.max(0, gap - (performance.now() - this.#lastFlush));
    setTimeout(() => this.#flush(), wait);
  }

  #flush(): void {
    this.#flushing = false;
    this.#lastFlush = performance.now();
    if (this.#abort.signal.aborted) return;
    const batch = this.#queue;
    this.#queue = [];
    const s = this.#snap;
    // Copies made once per batch, only of what the batch changes.
    let records: Map<string, ArtefactRecord> | undefined;
    let passes: Map<number, { pass: number; limit: number }> | undefined;
    let buildNames: Map<string, string> | undefined;
    let taskStates: Map<string, TaskState> | undefined;
    let builds = s.builds;
    for (const e of batch) {
      const body = e.body as Record<string, unknown>;
      switch (e.type) {
        case 'artefact.states': {
          // The records one turn of MajorDomo changed, in order.
          records ??= new Map(s.records);
          for (const rec of (body.records ?? []) as ArtefactRecord[]) {
            records.set(rec.path, rec);
            if (!s.graphStates.has(rec.path)) this.refresh('graph');
          }
          break;
        }
        case 'build.requested': {
          const taskId = String(body.taskId);
          const pass = Number(body.pass);
          const comp = s.components.get(taskId);
          if (comp !== undefined && pass > 0) {
            passes ??= new Map(s.passes);
            passes.set(comp, { pass, limit: passes.get(comp)?.limit ?? 0 });
          }
          const build: Build = {
            taskId,
            buildId: String(body.buildId),
            chef: String(body.chef),
            pass,
            component: comp ?? -1,
            cyclic: false,
          };
          buildNames ??= new Map(s.buildNames);
          buildNames.set(
            build.buildId,
            comp !== undefined && this.#cyclic(comp) ? `${taskId} · pass ${pass}` : taskId,
          );
          builds = [...builds.filter((b) => b.taskId !== taskId), build];
          this.refresh('builds');
          this.refresh('plan');
          break;
        }
        case 'build.result':
          builds = builds.filter((b) => b.buildId !== body.buildId);
          this.refresh('builds');
          this.refresh('plan');
          this.refresh('tasks');
          // The states it moves arrive as artefact.states; the graph (megabytes on a large
          // project) is read again only when the result changes its shape.
          if (this.#reshapes(body)) this.refresh('graph');
          break;
        case 'build.cancel':
          this.refresh('builds');
          this.refresh('plan');
          break;
        case 'task.state':
          if (typeof body.buildId === 'string') {
            taskStates ??= new Map(s.taskStates);
            taskStates.set(body.buildId, body.state as TaskState);
          }
          this.refresh('tasks');
          break;
        case 'rules.declared':
          this.refresh('graph', 1000);
          break;
        case 'files.changed': {
          // New, gone or moved files change the graph; new bytes in a known one do not (its
          // state arrives as artefact.states).
          const events = (body.events ?? []) as Array<{ kind: string; path: string }>;
          if (events.some((f) => f.kind !== 'changed' || !s.graphStates.has(f.path)))
            this.refresh('graph');
          this.refresh('plan');
          break;
        }
      }
    }
    this.#set({
      events: s.events + batch.length,
      builds,
      ...(records ? { records } : {}),
      ...(passes ? { passes } : {}),
      ...(buildNames ? { buildNames } : {}),
      ...(taskStates ? { taskStates } : {}),
    });
    void afterRender(this.#lastFlush).then((cost) => {
      this.#flushCost = cost;
    });
  }
}

/** The state shown for `path`: its record, or the graph's view while it has none. */
export function shownState(s: Snapshot, path: string): Shown {
  const rec = s.records.get(path);
  if (rec) {
    if (rec.status === 'queued' && rec.producer) {
      const b = s.builds.find((x) => x.taskId === rec.producer);
      if (b && s.taskStates.get(b.buildId) === 'running') return 'building';
    }
    return rec.status;
  }
  const g = s.graphStates.get(path);
  return g ? fromGraph[g] : 'missing';
}

export const STATE_LABEL: Record<ArtefactStatus, string> = {
  source: 'source',
  missing: 'missing',
  stale: 'stale',
  queued: 'queued',
  building: 'building',
  up_to_date: 'up to date',
  failed: 'failed',
  cancelled: 'cancelled',
  not_converging: 'not converging',
};

/** Why an artefact is in its state, in a few words. */
export function reasonOf(s: Snapshot, path: string): string {
  const rec = s.records.get(path);
  const state = shownState(s, path);
  switch (state) {
    case 'source':
      return 'a source file';
    case 'up_to_date':
      return rec?.producer ? `built by ${rec.producer}` : 'up to date';
    case 'queued':
      return `waiting for ${rec?.producer ?? 'its build'} to run`;
    case 'building':
      return `${rec?.producer ?? 'its build'} is running`;
    case 'failed':
    case 'not_converging':
      return rec?.error ?? state;
    case 'cancelled':
      return 'build cancelled on request: not built again until an input changes or a rebuild is asked for';
    case 'stale':
      return rec?.error ?? 'an input changed; waiting to be rebuilt';
    case 'missing':
      return 'not there yet';
  }
}
