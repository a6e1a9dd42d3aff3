import type { Bus, TypedKv } from '@computepods/bus';
import {
  buckets,
  checkProfileFor,
  kvKey,
  type Profile,
  Profile as ProfileSchema,
  parseProfile,
  parseResource,
  profileId,
  type Resource,
  Resource as ResourceSchema,
  resourceId,
} from '@computepods/protocol';
import { casLoop, isConflict } from './cas.js';
import { notFound, ProjectError } from './errors.js';
import { UsageLedger } from './usage.js';

const LIST_RESOURCES = 'cpctrl resource list';
const LIST_PROFILES = 'cpctrl profile list';

/**
 * The lab-wide catalog of computational resources (`cp_resources`) and profiles (`cp_profiles`),
 * with the usage ledger (`cp_usage`) that keeps a used one from being deleted: a profile holds a
 * use of its resource, a queue holds a use of its resource and profile.
 */
export class ResourceCatalog {
  private constructor(
    readonly resources: TypedKv<typeof ResourceSchema>,
    readonly profiles: TypedKv<typeof ProfileSchema>,
    readonly usage: UsageLedger,
  ) {}

  static async open(bus: Bus): Promise<ResourceCatalog> {
    return new ResourceCatalog(
      // Read right after written (a resource made, then a queue bound to it): from the leader.
      await bus.kv(buckets.resources(), ResourceSchema, { leaderReads: true }),
      await bus.kv(buckets.profiles(), ProfileSchema, { leaderReads: true }),
      await UsageLedger.open(bus),
    );
  }

  async resource(id: string): Promise<Resource | undefined> {
    return (await this.resources.get(id))?.value;
  }

  async profile(id: string): Promise<Profile | undefined> {
    return (await this.profiles.get(id))?.value;
  }

  async listResources(): Promise<Map<string, Resource>> {
    return new Map([...(await this.resources.entries())].map(([k, v]) => [k, v.value]));
  }

  async listProfiles(): Promise<Map<string, Profile>> {
    return new Map([...(await this.profiles.entries())].map(([k, v]) => [k, v.value]));
  }

  /**
   * Validates (errors name the field) and stores a resource; `replace` overwrites one with the
   * same id, at the revision read (a delete or another replace meanwhile makes it fail).
   */
  async createResource(
    input: unknown,
    opts: { replace?: boolean } = {},
  ): Promise<{ id: string; resource: Resource }> {
    const resource = parseResource(input);
    const id = resourceId(resource);
    const cur = await this.resources.get(id);
    if (cur && !opts.replace)
      throw new ProjectError('CP_EXISTS', `resource ${id} exists; use --replace to overwrite it`);
    // Its profiles (and the queues' copies) are of its type: another type is another resource.
    if (cur && cur.value.type !== resource.type)
      throw new ProjectError(
        'CP_INVALID',
        `resource ${id} is ${cur.value.type}; it cannot become ${resource.type}: give it another id, or delete it (cpctrl resource delete ${id}) and create it again`,
        'type',
      );
    if (cur)
      await this.resources
        .update(id, resource, cur.revision)
        .catch(changedMeanwhile('resource', id));
    else await this.resources.create(id, resource).catch(changedMeanwhile('resource', id));
    await this.usage.revive('resource', id);
    return { id, resource };
  }

  /**
   * Deletes a resource unless a profile or queue uses it (CP_IN_USE names them). The usage record
   * is marked deleted first, then the resource is removed at the revision read before the mark,
   * so a resource re-created meanwhile is never removed under a use taken of the new one.
   */
  async deleteResource(id: string): Promise<void> {
    await casLoop(`deleting resource ${id}`, async () => {
      const cur = await this.resources.get(id);
      if (!cur) throw notFound('resource', id, LIST_RESOURCES);
      await this.usage.retire('resource', id);
      await this.resources.kv.delete(kvKey(id), { previousSeq: cur.revision });
    });
  }

  /**
   * Validates a profile against its resource and stores it. The resource is `opts.resource`, else
   * the profile's own `resource` field, else the only resource of its type. The profile takes a
   * use of the resource before it is stored, so the resource cannot be deleted in between.
   */
  async createProfile(
    input: unknown,
    opts: { resource?: string; replace?: boolean } = {},
  ): Promise<{ id: string; profile: Profile }> {
    const p = parseProfile(input);
    let rid = opts.resource ?? p.resource;
    if (!rid) {
      const sameType = [...(await this.listResources())]
        .filter(([, r]) => r.type === p.resource_type)
        .map(([id]) => id);
      if (sameType.length !== 1)
        throw new ProjectError(
          'CP_PROFILE_RESOURCE',
          sameType.length === 0
            ? `no ${p.resource_type} resource exists yet; create one first (cpctrl resource create -f FILE)`
            : `several ${p.resource_type} resources (${sameType.join(', ')}): say which with --resource ID`,
          'resource',
        );
      rid = sameType[0] as string;
    }
    const bound = { ...p, resource: rid } as Profile;
    const id = profileId(bound);
    const cur = await this.profiles.get(id);
    if (cur && !opts.replace)
      throw new ProjectError('CP_EXISTS', `profile ${id} exists; use --replace to overwrite it`);
    // Queues bind a resource and a profile of it together: a profile never moves to another
    // resource (deleting it first is refused while a queue uses it, without a race).
    if (cur && cur.value.resource !== rid)
      throw new ProjectError(
        'CP_INVALID',
        `profile ${id} is for resource ${cur.value.resource}, not ${rid}; give it another id, or delete it (cpctrl profile delete ${id}) and create it again`,
        'resource',
      );
    const check = async () => {
      const r = await this.resource(rid);
      if (!r) throw notFound('resource', rid, LIST_RESOURCES);
      checkProfileFor(r, bound);
    };
    if (cur) {
      // The profile being replaced holds its use of the resource; written at the revision read,
      // so a delete that released that use meanwhile makes this fail instead.
      await check();
      await this.profiles.update(id, bound, cur.revision).catch(changedMeanwhile('profile', id));
    } else {
      await this.usage.acquire('resource', rid, { profile: id }, check);
      try {
        await this.profiles.create(id, bound).catch(changedMeanwhile('profile', id));
      } catch (err) {
        await this.usage.release('resource', rid, { profile: id });
        throw err;
      }
    }
    await this.usage.revive('profile', id);
    return { id, profile: bound };
  }

  /**
   * Deletes a profile unless a queue uses it, then releases its use of the resource. With
   * `releaseStale`, a profile that is gone but still counts as a user of a resource (a create or
   * delete that stopped half-way) has that use released; only do that when no create of this
   * profile runs, or its use would be released under it.
   */
  async deleteProfile(id: string, opts: { releaseStale?: boolean } = {}): Promise<void> {
    const gone = await casLoop(`deleting profile ${id}`, async () => {
      const cur = await this.profiles.get(id);
      if (!cur) return undefined;
      await this.usage.retire('profile', id);
      await this.profiles.kv.delete(kvKey(id), { previousSeq: cur.revision });
      return cur.value;
    });
    if (gone?.resource) {
      await this.usage.release('resource', gone.resource, { profile: id });
      return;
    }
    const stale = (await this.usage.heldBy({ profile: id })).filter((h) => h.kind === 'resource');
    if (!stale.length) throw notFound('profile', id, LIST_PROFILES);
    if (!opts.releaseStale)
      throw new ProjectError(
        'CP_NOT_FOUND',
        `no profile ${id}, but resource ${stale.map((h) => h.id).join(', ')} still counts a use by it (a create or delete that did not finish); if no \`cpctrl profile create\` of it is running, release it with \`cpctrl profile delete ${id} --release-stale\``,
      );
    for (const h of stale) while (await this.usage.release('resource', h.id, { profile: id })) {}
  }
}

/**
 * The handler of a revision-checked write of a resource or profile: another writer won (a
 * conflict) is said in words with the command that shows the record now; anything else is
 * thrown as it came.
 */
function changedMeanwhile(kind: 'resource' | 'profile', id: string) {
  return (err: unknown): never => {
    throw isConflict(err)
      ? new ProjectError(
          'CP_CONFLICT',
          `${kind} ${id} was created, changed or deleted meanwhile; see it with \`cpctrl ${kind} show ${id}\` and run this again`,
        )
      : err;
  };
}
