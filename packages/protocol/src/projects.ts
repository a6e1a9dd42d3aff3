import { z } from 'zod';
import { Sha256 } from './files.js';
import { ProjectName, ServiceName } from './names.js';
import { Profile, Resource } from './resources.js';

/*
 * Projects as the jobq seed describes them: a tenant with members and roles, bound to queues
 * (a resource + profile + concurrency quota). The registry copy lives in the lab-wide
 * `cp_projects` bucket (admins only); the project's own copy, which its services read, lives
 * in its `cp_<p>_config` bucket under `project`, each queue resolved under `queue.<name>`.
 */

/** What a member may do. admin: everything in the project; member: build, control tasks; viewer: read. */
export const Role = z.enum(['admin', 'member', 'viewer']);
export type Role = z.infer<typeof Role>;

/** A person or service account: a POSIX-like login name, also a NATS user name and a KV key. */
export const UserName = z
  .string()
  .regex(
    /^[a-z_][a-z0-9_-]{0,31}$/,
    'use 1-32 characters: lower-case letters, digits, "-" or "_", starting with a letter or "_"',
  );

export const Member = z.strictObject({ user: UserName, role: Role });
export type Member = z.infer<typeof Member>;

/** A project's binding to a resource: tasks of rules asking this resource + profile go here. */
export const Queue = z.strictObject({
  /** The queue's name: tasks go to `cp.<project>.tasks.<name>`. */
  name: ServiceName,
  resource: ServiceName,
  /** The profile (the account jobs run under); none for a `local` resource. */
  profile: ServiceName.optional(),
  /** Tasks of this project running at once on this queue. */
  concurrency: z.number().int().min(1).max(100_000).default(8),
});
export type Queue = z.infer<typeof Queue>;
export type QueueInput = z.input<typeof Queue>;

const Tag = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.:=-]{0,62}$/, 'a tag is 1-63 letters, digits or "_.:=-"');

export const Project = z.strictObject({
  name: ProjectName,
  description: z.string().max(2000).default(''),
  tags: z.array(Tag).max(50).default([]),
  /** An inactive project refuses new builds and keeps its history. */
  active: z.boolean().default(true),
  members: z.array(Member).max(1000).default([]),
  queues: z.array(Queue).max(100).default([]),
  created: z.string().datetime(),
  updated: z.string().datetime(),
});
export type Project = z.infer<typeof Project>;
export type ProjectInput = z.input<typeof Project>;

/**
 * A REST API token, as MajorDomo keeps it: only the SHA-256 of the secret is stored. The
 * secret is shown once, when `cpctrl token create` makes it: `cpt_<id>_<secret>`.
 */
export const ApiTokenRecord = z.strictObject({
  id: z.string().regex(/^[a-z0-9]{8,32}$/),
  user: UserName,
  sha256: Sha256,
  created: z.string().datetime(),
  /** Set when revoked; a revoked token is refused, its record kept for the audit trail. */
  revoked: z.string().datetime().optional(),
  description: z.string().max(200).default(''),
});
export type ApiTokenRecord = z.infer<typeof ApiTokenRecord>;

/**
 * A queue as its runner reads it (`queue.<name>` in `cp_<p>_config`): the binding plus copies of
 * the resource and profile an admin bound it to, so a runner needs no access to the lab-wide
 * registry and runs tasks only under the profile this queue grants.
 */
export const ResolvedQueue = z.strictObject({
  queue: Queue,
  resource: Resource,
  profile: Profile.optional(),
});
export type ResolvedQueue = z.infer<typeof ResolvedQueue>;
