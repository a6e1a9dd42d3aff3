// The API's shapes as the page reads them (GET /openapi.json describes the same routes). Kept
// here rather than imported from @computepods/protocol, which is Node code.

export type ArtefactStatus =
  | 'source'
  | 'missing'
  | 'stale'
  | 'queued'
  | 'building'
  | 'up_to_date'
  | 'failed'
  | 'cancelled'
  | 'not_converging';

/** The depgraph's own view of an artefact in GET /api/graph. */
export type GraphState =
  | 'source'
  | 'up_to_date'
  | 'dirty'
  | 'building'
  | 'failed'
  | 'cancelled'
  | 'not_converging'
  | 'missing';

export interface ArtefactRecord {
  path: string;
  status: ArtefactStatus;
  sha256: string | null;
  cutoff?: string;
  size: number | null;
  producer?: string;
  auxiliary?: boolean;
  pods: string[];
  updated: string;
  buildId?: string;
  error?: string;
  passes?: number;
}

export interface GraphJSON {
  rules: Array<{ id: string; inputs: string[]; outputs: string[]; passLimit?: number }>;
  artefacts: Array<{
    path: string;
    hash: string | null;
    state: GraphState;
    producer: string | null;
  }>;
  tasks: Array<{
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
  components: Array<{
    id: number;
    cyclic: boolean;
    tasks: string[];
    /** The pass running now (0: settled); absent from older servers. */
    pass?: number;
    passLimit?: number;
  }>;
}

export interface PlanJSON {
  components: Array<{
    id: number;
    cyclic: boolean;
    pass: number;
    passLimit: number;
    state: string;
    tasks: Array<{ id: string; state: string; blocked?: string }>;
  }>;
  ready: string[];
  running: string[];
}

export interface Build {
  taskId: string;
  buildId: string;
  chef: string;
  pass: number;
  component: number;
  cyclic: boolean;
}

export type TaskState =
  | 'created'
  | 'submitted'
  | 'running'
  | 'finished'
  | 'failed'
  | 'killed'
  | 'paused';

export interface TaskRecord {
  task: {
    taskId: string;
    buildId?: string;
    resource: string;
    profile?: string;
    command: string;
    files?: { inputs: string[]; outputs: string[] };
    /** The graph's step the task runs (rule:stem) and its pass (a cycle's steps run in passes). */
    step?: { id: string; pass: number; chef?: string; also?: string[] };
  };
  state: TaskState;
  pausedFrom?: TaskState;
  runner?: string;
  /** The queue whose runner runs it (older records: the resource's name). */
  queue?: string;
  pid?: number;
  jobId?: string;
  exitCode?: number | null;
  reason?: string;
  stdoutPath?: string;
  stderrPath?: string;
  history: Array<{ state: TaskState; time: string }>;
  updated: string;
}

export interface WhyStep {
  artefact: string;
  because: string;
}

export interface ArtefactDetail {
  artefact: ArtefactRecord;
  producer: string | null;
  why: WhyStep[];
}

export interface Whoami {
  user: string;
  role: string;
  tokenId?: string;
}

/** One message of GET /api/events: the bus envelope, `type` naming the body's schema. */
export interface BusEvent {
  type: string;
  time: string;
  source: string;
  cid: string;
  body: unknown;
}

export const TERMINAL: readonly TaskState[] = ['finished', 'failed', 'killed'];
/** A task can be paused only while it waits (see packages/executors). */
export const PAUSABLE: readonly TaskState[] = ['created', 'submitted'];
