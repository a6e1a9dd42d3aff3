import type { DependencyManager } from '@computepods/depgraph';
import {
  type ArtefactRecord,
  type ArtefactStatus,
  CpError,
  type StatusReply,
  type StatusRequest,
} from '@computepods/protocol';
import type { ArtefactManager } from './artefacts.js';
import type { MajorDomoConfig } from './config.js';
import { GraphText } from './graph-text.js';

/** An artefact MajorDomo does not know: 404 over REST; its code and field over NATS. */
export class UnknownArtefactError extends CpError {
  readonly field = 'path';
  /** `reason`: what is known of it, in place of the plain "no artefact" (its message). */
  constructor(
    readonly path: string,
    reason = `no artefact ${path}`,
  ) {
    super(
      'CP_UNKNOWN_ARTEFACT',
      `${reason}; \`cpctrl artefact list\` (GET /api/artefacts) lists them`,
    );
  }
}

/** A cancel for a task with no build in flight: 404 over REST (the NATS answer says cancelled: false). */
export class UnknownBuildError extends CpError {
  readonly field = 'taskId';
  constructor(readonly taskId: string) {
    super(
      'CP_UNKNOWN_BUILD',
      `no build in flight for task ${taskId}; \`cpctrl builds\` (GET /api/builds) lists them`,
    );
  }
}

export interface ArtefactDetail {
  readonly artefact: ArtefactRecord;
  /** The task that produces it; null for a source. */
  readonly producer: string | null;
  readonly why: Array<{ artefact: string; because: string }>;
}

/** What MajorDomo lends its queries: read views of its state, and the steps that act on it. */
export interface QueryParts {
  /** The settings the adapters serve with (read-only: MajorDomo's configuration). */
  readonly config: MajorDomoConfig;
  readonly dm: DependencyManager;
  readonly artefacts: ArtefactManager;
  readonly status: (req: StatusRequest) => StatusReply;
  readonly builds: () => BuildInFlight[];
  readonly requestBuild: (
    path: string,
    force: boolean,
    cid: string,
  ) => Promise<{ status: string; message: string }>;
  /** Whether a build was in flight for the task, and is now cancelled (and held). */
  readonly cancelBuild: (taskId: string, cid: string) => Promise<boolean>;
}

export interface BuildInFlight {
  readonly taskId: string;
  readonly buildId: string;
  readonly chef: string;
  readonly pass: number;
  readonly component: number;
  readonly cyclic: boolean;
}

/**
 * What REST (http.ts) and the NATS API (api.ts) ask of a project's MajorDomo, answered in one
 * place, with the same checks and the same errors: the adapters only parse, authorize and
 * encode. Paths reach it checked (the request schemas, or http.ts's safePath).
 */
export class ProjectQueries {
  readonly #graph: GraphText;

  constructor(private readonly md: QueryParts) {
    this.#graph = new GraphText(md.dm);
  }

  get config(): MajorDomoConfig {
    return this.md.config;
  }

  status(req: StatusRequest): StatusReply {
    return this.md.status(req);
  }

  /** Every artefact record, optionally only those in one state or under one path prefix. */
  artefacts(filter: { status?: ArtefactStatus; prefix?: string } = {}): ArtefactRecord[] {
    const { status, prefix } = filter;
    return this.md.artefacts
      .all()
      .filter((a) => (!status || a.status === status) && (!prefix || a.path.startsWith(prefix)));
  }

  /** One artefact, the task that produces it, and why it is (or was) dirty. */
  artefact(path: string): ArtefactDetail {
    const artefact = this.md.artefacts.get(path);
    if (!artefact) throw new UnknownArtefactError(path);
    return {
      artefact,
      producer: this.md.dm.producerOf(path) ?? null,
      why: this.md.dm.why(path).map((w) => ({ ...w })),
    };
  }

  /** The chain of changes that made an artefact dirty; an artefact no record or rule knows is refused. */
  why(path: string): Array<{ artefact: string; because: string }> {
    if (!this.md.artefacts.get(path) && !this.md.dm.producerOf(path))
      throw new UnknownArtefactError(path);
    return this.md.dm.why(path).map((w) => ({ ...w }));
  }

  /**
   * The graph with its components (cycles) marked, as JSON (depgraph's GraphJSON, as text kept
   * per graph version: graph-text.ts), or as DOT (only the pending work with `plan`).
   */
  graph(format: 'json' | 'dot', plan = false) {
    return format === 'dot'
      ? { format, graph: this.md.dm.toDOT({ plan }) }
      : { format, graph: this.#graph.get() };
  }

  /** Components in topological order with their state. */
  plan() {
    return this.md.dm.plan();
  }

  builds(): BuildInFlight[] {
    return this.md.builds();
  }

  requestBuild(path: string, force: boolean, cid: string) {
    return this.md.requestBuild(path, force, cid);
  }

  /** Whether a build was in flight for the task, and is now cancelled (held until an input changes or a rebuild). */
  cancelBuild(taskId: string, cid: string): Promise<boolean> {
    return this.md.cancelBuild(taskId, cid);
  }
}
