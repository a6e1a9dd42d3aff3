import { type Bus, isPermissionDenied, type TypedKv } from '@computepods/bus';
import {
  buckets,
  kvKey,
  type Member,
  type Profile,
  Project,
  ProjectName,
  Queue,
  type QueueInput,
  type ResolvedQueue,
  type Resource,
  UserName,
} from '@computepods/protocol';
import { casLoop, isConflict } from './cas.js';
import { ResourceCatalog } from './catalog.js';
import { ProjectCopy, sameBinding } from './copies.js';
import { notFound, ProjectError, parseInput } from './errors.js';
import {
  CreateProjectInput,
  MemberInput,
  type MemberInput as MemberInputType,
  UpdateProjectInput,
} from './inputs.js';
import type { UsageKind, UsageUser } from './usage.js';

export interface ProjectRegistryOptions {
  /** Reaches the lab-wide buckets: cp_projects, cp_resources, cp_profiles, cp_usage. */
  readonly registry: Bus;
  /**
   * Reaches project `name`'s own buckets (in secure mode its own NATS account, with other
   * credentials). Called once per project; the registry never closes what it returns.
   */
  readonly project: (name: string) => Promise<Bus>;
  /**
   * Runs before a new project's record is written (to create its NATS account and streams, say);
   * when it throws, nothing is written. Two creates racing for one name may both run it, and one
   * then fails with CP_EXISTS, so it must be idempotent.
   */
  readonly onCreate?: (project: Project) => Promise<void>;
  /** Runs after a project's records are deleted. Its streams and history stay unless this removes them. */
  readonly onDelete?: (name: string) => Promise<void>;
}

/** The result of a queue create: the resolved queue, and whether this call bound it. */
export interface QueueCreated {
  readonly resolved: ResolvedQueue;
  readonly created: boolean;
}

const now = () => new Date().toISOString();

/** The registry is another NATS account in secure mode: say whose credentials reach it. */
const noRegistry = (what: string) => (err: unknown) => {
  throw new ProjectError(
    'CP_NO_REGISTRY',
    `cannot open the lab-wide registry (${what}) with these credentials (${(err as Error).message}); lab-wide commands need a lab admin's (the auth dir \`up\` made, or CP_AUTH_DIR); \`cpctrl project show\` shows your own project`,
  );
};
const LIST_PROJECTS = 'cpctrl project list';
const adminCount = (p: Project) => p.members.filter((m) => m.role === 'admin').length;

function lastAdmin(project: string, user: string): ProjectError {
  return new ProjectError(
    'CP_LAST_ADMIN',
    `${user} is the last admin of project ${project}, and a project keeps at least one; make another member admin first (cpctrl project member add USER --role admin --project ${project})`,
    'user',
  );
}

/**
 * Projects as the jobq seed describes them: a namespace with a description, tags, an active
 * flag, members with roles, and queues that bind it to a resource and profile.
 *
 * The lab-wide record (`cp_projects`, key = name) is the authority; every write of it is a
 * revision-checked update (concurrent writers never lose each other's change), then the
 * project's own copy (`cp_<p>_config`, key `project`, and `queue.<name>`) is brought up to date.
 */
export class ProjectRegistry {
  readonly #opts: ProjectRegistryOptions;
  #records?: Promise<TypedKv<typeof Project>>;
  #catalog?: Promise<ResourceCatalog>;
  readonly #copies = new Map<string, Promise<ProjectCopy>>();

  constructor(opts: ProjectRegistryOptions) {
    this.#opts = opts;
  }

  records(): Promise<TypedKv<typeof Project>> {
    this.#records ??= this.#opts.registry
      .kv(buckets.projects(), Project, { history: 5, leaderReads: true })
      .catch(noRegistry(buckets.projects()));
    return this.#records;
  }

  catalog(): Promise<ResourceCatalog> {
    this.#catalog ??= ResourceCatalog.open(this.#opts.registry).catch(
      noRegistry(`${buckets.resources()}, ${buckets.profiles()}`),
    );
    return this.#catalog;
  }

  /** The project's own copy (its config bucket), through the project's connection. */
  copy(name: string): Promise<ProjectCopy> {
    let c = this.#copies.get(name);
    if (!c) {
      c = this.#opts.project(name).then((bus) => ProjectCopy.open(bus, name));
      this.#copies.set(name, c);
    }
    return c;
  }

  async create(input: CreateProjectInput): Promise<Project> {
    const c = parseInput(CreateProjectInput, input, 'project');
    const records = await this.records();
    const exists = () =>
      new ProjectError(
        'CP_EXISTS',
        `project ${c.name} exists; pick another name, or see it with \`cpctrl project show ${c.name}\``,
        'name',
      );
    if (await records.get(c.name)) throw exists();
    const t = now();
    const project = Project.parse({
      name: c.name,
      description: c.description,
      tags: c.tags,
      active: c.active,
      members: [{ user: c.admin, role: 'admin' }],
      queues: [],
      created: t,
      updated: t,
    });
    await this.#opts.onCreate?.(project);
    await records.create(c.name, project).catch((err) => {
      throw isConflict(err) ? exists() : err;
    });
    await this.sync(c.name);
    return project;
  }

  async list(): Promise<Project[]> {
    const all = [...(await (await this.records()).entries()).values()].map((v) => v.value);
    return all.sort((a, b) => a.name.localeCompare(b.name));
  }

  async get(name: string): Promise<Project | undefined> {
    const n = parseInput(ProjectName, name, 'project name');
    return (await (await this.records()).get(n))?.value;
  }

  /**
   * The project's record from the registry; where these credentials cannot read the registry (a
   * member's reach only their own project's account), from the project's own copy.
   */
  async show(name: string): Promise<Project> {
    let p: Project | undefined;
    try {
      p = await this.get(name);
    } catch (err) {
      if ((err as ProjectError).code !== 'CP_NO_REGISTRY' && !isPermissionDenied(err)) throw err;
      p = await (await this.copy(name)).read();
    }
    if (!p) throw notFound('project', name, LIST_PROJECTS);
    return p;
  }

  /** Changes the description, tags (replaced as a whole) or active flag. */
  async update(name: string, input: UpdateProjectInput): Promise<Project> {
    const u = parseInput(UpdateProjectInput, input, 'project update');
    return this.#modify(name, `updating project ${name}`, (p) => ({
      ...p,
      ...(u.description !== undefined ? { description: u.description } : {}),
      ...(u.tags !== undefined ? { tags: u.tags } : {}),
      ...(u.active !== undefined ? { active: u.active } : {}),
    }));
  }

  /**
   * Deletes a project's records (registry, then its copy). Refused while it has queues: deleting
   * them first releases its resources and leaves no runner queue bound to it, so nothing of it
   * keeps running; MajorDomo then refuses its builds. Its streams and history stay (onDelete may
   * remove them).
   */
  async delete(name: string): Promise<void> {
    parseInput(ProjectName, name, 'project name');
    const records = await this.records();
    await casLoop(`deleting project ${name}`, async () => {
      const cur = await records.get(name);
      if (!cur) throw notFound('project', name, LIST_PROJECTS);
      const queues = cur.value.queues.map((q) => q.name);
      if (queues.length)
        throw new ProjectError(
          'CP_IN_USE',
          `project ${name} has queue(s) ${queues.join(', ')}; delete them first (cpctrl queue delete NAME --project ${name})`,
          'queues',
        );
      await records.kv.delete(kvKey(name), { previousSeq: cur.revision });
    });
    await this.sync(name);
    await this.#opts.onDelete?.(name);
  }

  /** Brings the project's own copy up to date with the registry (every write does this itself). */
  async sync(name: string): Promise<void> {
    const records = await this.records();
    await (await this.copy(name)).syncProject(async () => (await records.get(name))?.value);
  }

  async members(project: string): Promise<Member[]> {
    return (await this.show(project)).members;
  }

  /** Adds a member, or changes the role of one (the last admin cannot be demoted). */
  async addMember(project: string, input: MemberInputType): Promise<Project> {
    const m = parseInput(MemberInput, input, 'member');
    return this.#modify(project, `adding ${m.user} to project ${project}`, (p) => {
      const cur = p.members.find((x) => x.user === m.user);
      if (cur?.role === m.role) return undefined;
      if (cur?.role === 'admin' && adminCount(p) === 1) throw lastAdmin(project, m.user);
      const others = p.members.filter((x) => x.user !== m.user);
      return { ...p, members: [...others, m] };
    });
  }

  /** Removes a member; the last admin stays. */
  async removeMember(project: string, user: string): Promise<Project> {
    const u = parseInput(UserName, user, 'user');
    return this.#modify(project, `removing ${u} from project ${project}`, (p) => {
      const cur = p.members.find((x) => x.user === u);
      if (!cur)
        throw new ProjectError(
          'CP_NOT_FOUND',
          `${u} is not a member of project ${project}; \`cpctrl project member list --project ${project}\` lists them`,
          'user',
        );
      if (cur.role === 'admin' && adminCount(p) === 1) throw lastAdmin(project, u);
      return { ...p, members: p.members.filter((x) => x.user !== u) };
    });
  }

  async queues(project: string): Promise<Queue[]> {
    return (await this.show(project)).queues;
  }

  /**
   * Binds the project to a resource (+ profile, + concurrency) as queue `name`. The queue takes a
   * use of its resource and profile before it is recorded (so neither can be deleted under it),
   * then it is recorded in the registry and copied, resolved, into the project's config bucket.
   * Creating an existing queue with the same binding changes nothing (created: false); with
   * another binding it is refused.
   */
  async createQueue(project: string, input: QueueInput): Promise<QueueCreated> {
    parseInput(ProjectName, project, 'project name');
    const q = parseInput(Queue, input, 'queue');
    const catalog = await this.catalog();
    await this.#checkBinding(catalog, q);
    const records = await this.records();
    const user: UsageUser = { project, queue: q.name };
    let held: { resource: Resource; profile?: Profile } | undefined;
    let result: QueueCreated;
    try {
      result = await casLoop(`creating queue ${q.name}`, async () => {
        const cur = await records.get(project);
        if (!cur) throw notFound('project', project, LIST_PROJECTS);
        const existing = cur.value.queues.find((x) => x.name === q.name);
        if (existing) {
          if (!sameBinding(existing, q))
            throw new ProjectError(
              'CP_EXISTS',
              `queue ${q.name} of project ${project} is bound to resource ${existing.resource}${existing.profile ? `, profile ${existing.profile}` : ''}, concurrency ${existing.concurrency}; to bind it otherwise delete it first (cpctrl queue delete ${q.name} --project ${project})`,
              'name',
            );
          // Bound already (by us earlier, or by a racing create that won): that queue holds its
          // own use, so the one we may have taken goes back.
          const mine = held;
          held = undefined; // if the release fails, a use kept too many is the safe side
          if (mine) await this.#release(catalog, q, user);
          return { resolved: await this.#resolve(catalog, existing), created: false };
        }
        held ??= await this.#take(catalog, q, user);
        const next = parseInput(
          Project,
          { ...cur.value, queues: [...cur.value.queues, q], updated: now() },
          'project record',
        );
        await records.update(project, next, cur.revision);
        const resolved: ResolvedQueue = {
          queue: q,
          resource: held.resource,
          ...(held.profile ? { profile: held.profile } : {}),
        };
        held = undefined; // the recorded queue owns the use now
        return { resolved, created: true };
      });
    } catch (err) {
      // A NATS error may hide a write that landed: a recorded queue keeps its use (a use kept
      // too many only blocks a delete; one released too many would let it remove a used resource).
      const landed =
        !(err instanceof ProjectError) &&
        (await records.get(project).catch(() => undefined))?.value.queues.some(
          (x) => x.name === q.name && sameBinding(x, q),
        );
      if (held && !landed) await this.#release(catalog, q, user);
      throw err;
    }
    const copy = await this.copy(project);
    const read = async () => (await records.get(project))?.value;
    await copy.syncQueue(q.name, read, (x) => this.#resolve(catalog, x));
    await copy.syncProject(read);
    return result;
  }

  /**
   * Removes queue `name` from the project, releases its resource and profile, and deletes its
   * copy. With `releaseStale`, a queue that is not recorded but still counts as a user (a create
   * that stopped between taking its uses and recording the queue) has those uses released; only
   * do that when no create of this queue is running, or its use would be released under it.
   */
  async deleteQueue(
    project: string,
    name: string,
    opts: { releaseStale?: boolean } = {},
  ): Promise<Queue | undefined> {
    parseInput(ProjectName, project, 'project name');
    const catalog = await this.catalog();
    const records = await this.records();
    let projectExists = true;
    const removed = await casLoop(`deleting queue ${name}`, async () => {
      const cur = await records.get(project);
      projectExists = !!cur;
      const q = cur?.value.queues.find((x) => x.name === name);
      if (!cur || !q) return undefined;
      const next = {
        ...cur.value,
        queues: cur.value.queues.filter((x) => x !== q),
        updated: now(),
      };
      await records.update(project, next, cur.revision);
      return q;
    });
    const user: UsageUser = { project, queue: name };
    if (removed) await this.#release(catalog, removed, user);
    else {
      const stale = await catalog.usage.heldBy(user);
      if (!stale.length && !projectExists) throw notFound('project', project, LIST_PROJECTS);
      if (!stale.length || !opts.releaseStale) {
        const where = stale.map((s) => `${s.kind} ${s.id}`).join(', ');
        throw new ProjectError(
          'CP_NOT_FOUND',
          stale.length
            ? `no queue ${name} in project ${project}, but ${where} still count(s) a use by it (a create that did not finish); if no \`cpctrl queue create ${name}\` is running, release it with \`cpctrl queue delete ${name} --project ${project} --release-stale\``
            : `no queue ${name} in project ${project}; \`cpctrl queue list --project ${project}\` lists them`,
          'name',
        );
      }
      for (const s of stale) while (await catalog.usage.release(s.kind, s.id, user)) {}
    }
    if (projectExists) {
      const copy = await this.copy(project);
      const read = async () => (await records.get(project))?.value;
      await copy.syncProject(read);
      await copy.syncQueue(name, read, (x) => this.#resolve(catalog, x));
    }
    return removed;
  }

  /**
   * After a resource or profile was replaced: rewrites the resolved copy of every queue that uses
   * it (a runner reads its resource and profile from there). Returns those queues.
   */
  async refreshQueues(kind: UsageKind, id: string): Promise<{ project: string; queue: string }[]> {
    const catalog = await this.catalog();
    const users = (await catalog.usage.get(kind, id))?.users ?? [];
    const queues = [
      ...new Map(
        users
          .filter((u): u is { project: string; queue: string } => 'queue' in u)
          .map((u) => [`${u.project}/${u.queue}`, u]),
      ).values(),
    ];
    const records = await this.records();
    for (const { project, queue } of queues) {
      const read = async () => (await records.get(project))?.value;
      const copy = await this.copy(project);
      await copy.syncQueue(queue, read, (x) => this.#resolve(catalog, x));
    }
    return queues;
  }

  /** Reads, changes (undefined: no change) and writes the record at the revision read; then copies it. */
  async #modify(
    name: string,
    what: string,
    change: (p: Project) => Project | undefined,
  ): Promise<Project> {
    parseInput(ProjectName, name, 'project name');
    const records = await this.records();
    const next = await casLoop(what, async () => {
      const cur = await records.get(name);
      if (!cur) throw notFound('project', name, LIST_PROJECTS);
      const changed = change(cur.value);
      if (!changed) return cur.value;
      const value = parseInput(Project, { ...changed, updated: now() }, 'project record');
      await records.update(name, value, cur.revision);
      return value;
    });
    // Also when nothing changed: a copy left behind by an interrupted write catches up.
    await this.sync(name);
    return next;
  }

  /** Errors that name the flag to fix, before anything is taken. */
  async #checkBinding(catalog: ResourceCatalog, q: Queue): Promise<void> {
    const r = await catalog.resource(q.resource);
    if (!r)
      throw new ProjectError(
        'CP_NOT_FOUND',
        `no resource ${q.resource}; \`cpctrl resource list\` lists them`,
        'resource',
      );
    // Only for the hint of an error: listing a bucket is a watch, not needed on the way to success.
    const forIt = async () =>
      [...(await catalog.listProfiles())]
        .filter(([, p]) => p.resource === q.resource)
        .map(([id]) => id);
    if (q.profile) {
      const p = await catalog.profile(q.profile);
      const others = p && p.resource !== q.resource ? await forIt() : [];
      if (!p)
        throw new ProjectError(
          'CP_NOT_FOUND',
          `no profile ${q.profile}; \`cpctrl profile list\` lists them`,
          'profile',
        );
      if (p.resource !== q.resource)
        throw new ProjectError(
          'CP_INVALID',
          `profile ${q.profile} is for resource ${p.resource}, not ${q.resource}; ${others.length ? `profiles for ${q.resource}: ${others.join(', ')}` : `create one for it (cpctrl profile create -f FILE --resource ${q.resource})`}`,
          'profile',
        );
    } else if (r.type !== 'local') {
      const mine = await forIt();
      throw new ProjectError(
        'CP_INVALID',
        `resource ${q.resource} is ${r.type}: its jobs run under a profile; give --profile ID (${mine.length ? `profiles for it: ${mine.join(', ')}` : `create one: cpctrl profile create -f FILE --resource ${q.resource}`})`,
        'profile',
      );
    }
  }

  /** Takes a use of the queue's resource, then of its profile; both or neither. */
  async #take(
    catalog: ResourceCatalog,
    q: Queue,
    user: UsageUser,
  ): Promise<{ resource: Resource; profile?: Profile }> {
    const resource = await catalog.usage.acquire('resource', q.resource, user, async () => {
      const r = await catalog.resource(q.resource);
      if (!r) throw notFound('resource', q.resource, 'cpctrl resource list');
      return r;
    });
    const profileId = q.profile;
    if (!profileId) return { resource };
    try {
      const profile = await catalog.usage.acquire('profile', profileId, user, async () => {
        const p = await catalog.profile(profileId);
        if (!p) throw notFound('profile', profileId, 'cpctrl profile list');
        if (p.resource !== q.resource)
          throw new ProjectError(
            'CP_INVALID',
            `profile ${profileId} is for resource ${p.resource}, not ${q.resource}`,
            'profile',
          );
        return p;
      });
      return { resource, profile };
    } catch (err) {
      await catalog.usage.release('resource', q.resource, user);
      throw err;
    }
  }

  /** Gives back one use of the queue's resource and profile. */
  async #release(catalog: ResourceCatalog, q: Queue, user: UsageUser): Promise<void> {
    await catalog.usage.release('resource', q.resource, user);
    if (q.profile) await catalog.usage.release('profile', q.profile, user);
  }

  /** The resolved copy of a recorded queue, from the catalog (the queue holds both, so both exist). */
  async #resolve(catalog: ResourceCatalog, q: Queue): Promise<ResolvedQueue> {
    const resource = await catalog.resource(q.resource);
    if (!resource) throw notFound('resource', q.resource, 'cpctrl resource list');
    const profile = q.profile ? await catalog.profile(q.profile) : undefined;
    return { queue: q, resource, ...(profile ? { profile } : {}) };
  }
}
