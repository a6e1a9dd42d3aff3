import type { Bus, TypedKv } from '@computepods/bus';
import { buckets, ProjectName, ServiceName } from '@computepods/protocol';
import { z } from 'zod';
import { casLoop } from './cas.js';
import { ProjectError } from './errors.js';

/** Who holds a use of a resource or profile: a profile (of a resource) or a project's queue. */
export const UsageUser = z.union([
  z.strictObject({ profile: ServiceName }),
  z.strictObject({ project: ProjectName, queue: ServiceName }),
]);
export type UsageUser = z.infer<typeof UsageUser>;

/**
 * The usage record of one resource or profile (`cp_usage`, key `resource.<id>` / `profile.<id>`).
 * `users` is a multiset: every successful take adds one entry and its undo removes exactly one,
 * so two writers racing to bind the same queue never release each other's use.
 */
export const Usage = z.strictObject({
  users: z.array(UsageUser).default([]),
  /** Set by a delete before it removes the thing: from then on nobody may take a use. */
  deleted: z.string().datetime().optional(),
});
export type Usage = z.infer<typeof Usage>;

export type UsageKind = 'resource' | 'profile';

export function describeUser(u: UsageUser): string {
  return 'profile' in u ? `profile ${u.profile}` : `queue ${u.queue} of project ${u.project}`;
}

/** The command that ends a use, for "in use" errors. */
function undoOf(u: UsageUser): string {
  return 'profile' in u
    ? `cpctrl profile delete ${u.profile}`
    : `cpctrl queue delete ${u.queue} --project ${u.project}`;
}

const sameUser = (a: UsageUser, b: UsageUser) => JSON.stringify(a) === JSON.stringify(b);

/**
 * The in-use checks, made where they cannot race: every change of a usage record is a
 * revision-checked KV write (compare-and-set), and the two sides meet on the same key.
 *
 * - Taking a use (`acquire`) reads the record, checks the thing still exists, and writes the
 *   record back with one more user at the revision it read.
 * - Deleting the thing first marks the record deleted (`retire`) at the revision where it saw
 *   no users, and only then removes the thing.
 *
 * Whichever write lands second fails and re-reads: a taker then sees the deletion mark (or the
 * thing gone), a deleter sees the new user. So a resource or profile is never removed while a
 * profile or queue holds a use of it.
 */
export class UsageLedger {
  private constructor(readonly kv: TypedKv<typeof Usage>) {}

  static async open(bus: Bus): Promise<UsageLedger> {
    return new UsageLedger(await bus.kv(buckets.usage(), Usage, { leaderReads: true }));
  }

  static key(kind: UsageKind, id: string): string {
    return `${kind}.${id}`;
  }

  async get(kind: UsageKind, id: string): Promise<Usage | undefined> {
    return (await this.kv.get(UsageLedger.key(kind, id)))?.value;
  }

  /** Every usage record by kind and id. */
  async all(): Promise<{ kind: UsageKind; id: string; usage: Usage }[]> {
    return [...(await this.kv.entries())].map(([key, { value }]) => {
      const dot = key.indexOf('.');
      return { kind: key.slice(0, dot) as UsageKind, id: key.slice(dot + 1), usage: value };
    });
  }

  /**
   * Adds one use by `user`. `exists` runs after the record is read and must throw when the thing
   * is gone: a delete marks the record before removing the thing, so if `exists` saw it, either
   * the mark was already there (refused below) or the mark's write moves the revision and the
   * write here fails and reads again. Returns what `exists` returned.
   */
  async acquire<T>(
    kind: UsageKind,
    id: string,
    user: UsageUser,
    exists: () => Promise<T>,
  ): Promise<T> {
    const key = UsageLedger.key(kind, id);
    return casLoop(`taking ${kind} ${id} for ${describeUser(user)}`, async () => {
      const cur = await this.kv.get(key);
      if (cur?.value.deleted)
        throw new ProjectError(
          'CP_NOT_FOUND',
          `${kind} ${id} is deleted or being deleted; \`cpctrl ${kind} list\` lists what exists (a half-done delete finishes with \`cpctrl ${kind} delete ${id}\`)`,
          kind,
        );
      const value = await exists();
      if (cur) await this.kv.update(key, { users: [...cur.value.users, user] }, cur.revision);
      else await this.kv.create(key, { users: [user] });
      return value;
    });
  }

  /** Removes one use by `user` (none: nothing to do). A deletion mark is kept. */
  async release(kind: UsageKind, id: string, user: UsageUser): Promise<boolean> {
    const key = UsageLedger.key(kind, id);
    return casLoop(`releasing ${kind} ${id}`, async () => {
      const cur = await this.kv.get(key);
      const i = cur?.value.users.findIndex((u) => sameUser(u, user)) ?? -1;
      if (!cur || i < 0) return false;
      const users = cur.value.users.filter((_, j) => j !== i);
      await this.kv.update(key, { ...cur.value, users }, cur.revision);
      return true;
    });
  }

  /**
   * Marks `kind id` deleted, refusing (CP_IN_USE, naming every user and how to end its use) while
   * anyone uses it. The caller removes the thing afterwards; until it does, nobody can take a use.
   */
  async retire(kind: UsageKind, id: string): Promise<void> {
    const key = UsageLedger.key(kind, id);
    await casLoop(`deleting ${kind} ${id}`, async () => {
      const cur = await this.kv.get(key);
      const users = cur?.value.users ?? [];
      if (users.length) {
        const distinct = [...new Map(users.map((u) => [JSON.stringify(u), u])).values()];
        throw new ProjectError(
          'CP_IN_USE',
          `${kind} ${id} is used by ${distinct.map(describeUser).join(', ')}; end those uses first (${distinct.map(undoOf).join('; ')})`,
          kind,
        );
      }
      const marked = { users: [], deleted: new Date().toISOString() };
      if (cur) await this.kv.update(key, marked, cur.revision);
      else await this.kv.create(key, marked);
    });
  }

  /**
   * Clears the deletion mark an earlier delete left, once `kind id` exists again. Call it only
   * after the thing was (re)created: clearing first would let a delete still in progress remove
   * the new thing under a fresh use.
   */
  async revive(kind: UsageKind, id: string): Promise<void> {
    const key = UsageLedger.key(kind, id);
    await casLoop(`re-creating ${kind} ${id}`, async () => {
      const cur = await this.kv.get(key);
      if (!cur?.value.deleted) return;
      await this.kv.update(key, { users: cur.value.users }, cur.revision);
    });
  }

  /** Every (kind, id) whose users include `user`, for repairing a use left by a crashed writer. */
  async heldBy(user: UsageUser): Promise<{ kind: UsageKind; id: string }[]> {
    return (await this.all())
      .filter((r) => r.usage.users.some((u) => sameUser(u, user)))
      .map(({ kind, id }) => ({ kind, id }));
  }
}
