import type { Bus, TypedKv } from '@computepods/bus';
import { buckets, kvKey, Project, type Queue, ResolvedQueue } from '@computepods/protocol';
import { casLoop } from './cas.js';

const PROJECT_KEY = 'project';
const queueKey = (name: string) => `queue.${name}`;
const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

export function sameBinding(a: Queue, b: Queue): boolean {
  return a.resource === b.resource && a.profile === b.profile && a.concurrency === b.concurrency;
}

/**
 * The project's own copy of its record (`cp_<p>_config`, key `project`) and of its resolved
 * queues (`queue.<name>`): what its services and its members read, without access to the
 * lab-wide registry. The registry record is the authority; these follow it.
 *
 * Every sync reads the copy first and the registry second, then writes at the copy's revision:
 * whatever the copy holds was written from a registry read made before ours, so a writer holding
 * an older record can never overwrite a newer one (its write fails, it reads both again).
 */
export class ProjectCopy {
  private constructor(
    readonly project: TypedKv<typeof Project>,
    readonly queues: TypedKv<typeof ResolvedQueue>,
  ) {}

  static async open(bus: Bus, name: string): Promise<ProjectCopy> {
    // history 5 like MajorDomo's Access, which opens the same bucket.
    // Read right after written (a project's copy synced): from the leader (KvSpec.leaderReads).
    const spec = { history: 5, leaderReads: true };
    return new ProjectCopy(
      await bus.kv(buckets.config(name), Project, spec),
      await bus.kv(buckets.config(name), ResolvedQueue, spec),
    );
  }

  async read(): Promise<Project | undefined> {
    return (await this.project.get(PROJECT_KEY))?.value;
  }

  async queue(name: string): Promise<ResolvedQueue | undefined> {
    return (await this.queues.get(queueKey(name)))?.value;
  }

  /** Makes the copy of the record equal the registry's (deleting it when the registry has none). */
  async syncProject(registry: () => Promise<Project | undefined>): Promise<void> {
    await casLoop('copying the project record', async () => {
      const cur = await this.project.get(PROJECT_KEY);
      const want = await registry();
      if (!want) {
        if (cur) await this.project.kv.delete(kvKey(PROJECT_KEY), { previousSeq: cur.revision });
        return;
      }
      if (cur && same(cur.value, want)) return;
      if (cur) await this.project.update(PROJECT_KEY, want, cur.revision);
      else await this.project.create(PROJECT_KEY, want);
    });
  }

  /**
   * Makes the copy of queue `name` follow the registry: while the registry binds it, the copy is
   * what `resolve` makes of the registry's queue (its resource and profile as the catalog holds
   * them now); while the registry has no such queue, the copy is deleted. `resolve` runs after
   * the copy is read, like the registry, so a slower writer never puts back an older resource.
   */
  async syncQueue(
    name: string,
    registry: () => Promise<Project | undefined>,
    resolve: (q: Queue) => Promise<ResolvedQueue>,
  ): Promise<void> {
    const key = queueKey(name);
    await casLoop(`copying queue ${name}`, async () => {
      const cur = await this.queues.get(key);
      const inRegistry = (await registry())?.queues.find((q) => q.name === name);
      if (!inRegistry) {
        if (cur) await this.queues.kv.delete(kvKey(key), { previousSeq: cur.revision });
        return;
      }
      const want = await resolve(inRegistry);
      if (cur && same(cur.value, want)) return;
      if (cur) await this.queues.update(key, want, cur.revision);
      else await this.queues.create(key, want);
    });
  }
}
