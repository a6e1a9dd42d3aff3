import type { Bus, TypedKv } from '@computepods/bus';
import { buckets, CpError, Project } from '@computepods/protocol';

type KvEntry = NonNullable<Awaited<ReturnType<TypedKv<typeof Project>['kv']['get']>>>;

const KEY = 'project';

/** The project takes no builds now (inactive, deleted, or its record unreadable). */
export class ProjectInactiveError extends CpError<'CP_PROJECT_INACTIVE'> {
  /** What the REST API answers: the project's state, not the request, is at fault. */
  readonly statusCode = 409;
  constructor(message: string) {
    super('CP_PROJECT_INACTIVE', message);
  }
}

/**
 * Whether the project takes new builds, from its own copy of its record (`cp_<p>_config`, key
 * `project`, written by `cpctrl project …`), watched. An inactive project refuses build requests
 * and records file changes without dispatching builds; its history stays readable. Re-activated,
 * `onActivated` runs so the work that waited is planned.
 *
 * No record at all (a project started without `cpctrl project create`) counts as active; a
 * deleted record, or one that no longer validates, as inactive.
 */
export class ProjectState {
  #active = true;
  #reason = '';
  #revision = 0;
  #stop: (() => void) | undefined;

  get active(): boolean {
    return this.#active;
  }

  /** Why builds are refused ('' while active). */
  get reason(): string {
    return this.#reason;
  }

  /** Reads the record once (before MajorDomo serves anything), then follows every change. */
  async watch(bus: Bus, project: string, onActivated: () => void): Promise<void> {
    const kv = (await bus.kv(buckets.config(project), Project, { history: 5 })).kv;
    const apply = (e: KvEntry | null) => {
      if (!e || e.revision <= this.#revision) return;
      this.#revision = e.revision;
      const was = this.#active;
      this.#set(project, e, bus);
      if (!was && this.#active) onActivated();
    };
    apply(await kv.get(KEY));
    const iter = await kv.watch({ key: KEY });
    this.#stop = () => iter.stop();
    void (async () => {
      for await (const e of iter) apply(e);
    })();
  }

  #set(project: string, e: KvEntry, bus: Bus): void {
    if (e.operation !== 'PUT') {
      this.#active = false;
      this.#reason = `project "${project}" was deleted: builds are refused (an admin makes it again with cpctrl project create ${project})`;
      return;
    }
    let parsed: ReturnType<typeof Project.safeParse> | undefined;
    try {
      parsed = Project.safeParse(e.json());
    } catch {
      parsed = undefined;
    }
    if (!parsed?.success) {
      // Fail closed: a record we cannot read must not keep a de-activated project building.
      bus.logger.error({ bucket: e.bucket, key: e.key }, 'invalid project record: builds refused');
      this.#active = false;
      this.#reason = `project "${project}" has an invalid record: an admin rewrites it with cpctrl project update ${project}`;
      return;
    }
    this.#active = parsed.data.active;
    this.#reason = parsed.data.active
      ? ''
      : `project "${project}" is inactive: an admin re-activates it with cpctrl project update ${project} --active true`;
    bus.logger.info({ active: this.#active }, 'project state');
  }

  /** Throws CP_PROJECT_INACTIVE (naming how to re-activate) unless the project takes builds. */
  check(): void {
    if (this.#active) return;
    throw new ProjectInactiveError(this.#reason);
  }

  stop(): void {
    this.#stop?.();
  }
}
