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
import { casLoop } from './cas.js';
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
      await bus.kv(buckets.resources(), ResourceSchema),
      await bus.kv(buckets.profiles(), ProfileSchema),
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

  /** Validates (errors name the field) and stores a resource; `replace` overwrites one with the same id. */
  async createResource(
    input: unknown,
    opts: { replace?: boolean } = {},
  ): Promise<{ id: string; resource: Resource }> {
    const resource = parseResource(input);
    const id = resourceId(resource);
    if (opts.replace) await this.resources.put(id, resource);
    else
      await this.resources.create(id, resource).catch(() => {
        throw new ProjectError('CP_EXISTS', `resource ${id} exists; use --replace to overwrite it`);
      });
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
    const existing = (await this.profiles.get(id))?.value;
    if (existing && !opts.replace)
      throw new ProjectError('CP_EXISTS', `profile ${id} exists; use --replace to overwrite it`);
    const check = async () => {
      const r = await this.resource(rid);
      if (!r) throw notFound('resource', rid, LIST_RESOURCES);
      checkProfileFor(r, bound);
    };
    // A replacement bound to the same resource already holds its use.
    const takes = existing?.resource !== rid;
    if (takes) await this.usage.acquire('resource', rid, { profile: id }, check);
    else await check();
    try {
      if (opts.replace) await this.profiles.put(id, bound);
      else
        await this.profiles.create(id, bound).catch(() => {
          throw new ProjectError(
            'CP_EXISTS',
            `profile ${id} exists; use --replace to overwrite it`,
          );
        });
    } catch (err) {
      if (takes) await this.usage.release('resource', rid, { profile: id });
      throw err;
    }
    if (takes && existing?.resource)
      await this.usage.release('resource', existing.resource, { profile: id });
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
