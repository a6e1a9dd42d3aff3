import { type Bus, issuesOf, type Logger, type TypedKv } from '@computepods/bus';
import { buckets, Project } from '@computepods/protocol';
import { z } from 'zod';
import { type ProjectState, type QueueWant, type Route, routeTask } from './queues.js';

const KEY = 'project';

// The raw bucket: a deletion must be told apart from a value that fails validation.
type KV = TypedKv<z.ZodUnknown>['kv'];
type KvEntry = NonNullable<Awaited<ReturnType<KV['get']>>>;

/**
 * The project's record as the chef follows it in `cp_<p>_config` (key `project`: whether the
 * project is active and its queues). A value that fails validation is logged and ignored: the
 * last valid record stays in force (none yet: builds are refused, see routeTask).
 */
export class ProjectConfig {
  #state: ProjectState = { kind: 'absent' };
  #revision = 0;
  #stop: (() => void) | undefined;

  private constructor(
    readonly project: string,
    readonly logger: Logger,
  ) {}

  static async start(bus: Bus, project: string): Promise<ProjectConfig> {
    const cfg = new ProjectConfig(project, bus.logger);
    // Same history as MajorDomo's view of the bucket; the chef may only read it in production,
    // where it exists already (bus.kv opens it then).
    const kv = (await bus.kv(buckets.config(project), z.unknown(), { history: 5 })).kv;
    // Read before the first build is taken, so no build is routed on a state not yet seen.
    const now = await kv.get(KEY);
    if (now) cfg.#apply(now);
    cfg.#stop = await cfg.#follow(kv);
    return cfg;
  }

  async #follow(kv: KV): Promise<() => void> {
    const iter = await kv.watch({ key: KEY });
    void (async () => {
      for await (const e of iter) this.#apply(e);
    })().catch((err) =>
      this.logger.error({ err }, 'project record watch ended; restart the chef to follow it'),
    );
    return () => iter.stop();
  }

  #apply(e: KvEntry): void {
    if (e.revision <= this.#revision) return;
    this.#revision = e.revision;
    if (e.operation !== 'PUT') {
      this.#state = { kind: 'absent' };
      this.logger.warn({ key: e.key, bucket: e.bucket }, 'project record deleted');
      return;
    }
    let parsed: ReturnType<typeof Project.safeParse>;
    try {
      parsed = Project.safeParse(e.json());
    } catch {
      parsed = Project.safeParse(undefined);
    }
    if (!parsed.success) {
      this.logger.warn(
        { bucket: e.bucket, key: e.key, revision: e.revision, issues: issuesOf(parsed.error) },
        this.#state.kind === 'valid'
          ? 'invalid project record ignored; the last valid one stays in force'
          : 'invalid project record ignored; builds are refused until a valid one is written',
      );
      if (this.#state.kind === 'absent') this.#state = { kind: 'invalid' };
      return;
    }
    this.#state = { kind: 'valid', project: parsed.data };
    this.logger.info(
      {
        active: parsed.data.active,
        queues: parsed.data.queues.map((q) => ({
          name: q.name,
          resource: q.resource,
          ...(q.profile ? { profile: q.profile } : {}),
        })),
      },
      'project record read',
    );
  }

  get state(): ProjectState {
    return this.#state;
  }

  /** routeTask on the current record. */
  route(want: QueueWant): Route {
    return routeTask(this.project, this.#state, want);
  }

  stop(): void {
    this.#stop?.();
  }
}
