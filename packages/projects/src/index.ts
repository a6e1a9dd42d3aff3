/**
 * Projects as the jobq seed describes them — a namespace with a description, tags, an active
 * flag, members (admin | member | viewer) and queues binding it to a resource + profile — and
 * the lab-wide catalog of resources and profiles, with in-use checks that cannot race.
 *
 *   const projects = new ProjectRegistry({
 *     registry: adminBus,                      // cp_projects, cp_resources, cp_profiles, cp_usage
 *     project: async (name) => busFor(name),   // the project's own account (cp_<p>_config)
 *     onCreate: async (p) => createAccountAndStreams(p.name), // before the record is written
 *   });
 *   await projects.create({ name: 'thesis', admin: 'alice', tags: ['phd'] });
 *   await projects.addMember('thesis', { user: 'bob', role: 'member' });
 *   await projects.createQueue('thesis', { name: 'default', resource: 'local' });
 *   await projects.update('thesis', { active: false });  // MajorDomo refuses its new builds
 *   await (await projects.catalog()).deleteResource('local'); // CP_IN_USE: queue default uses it
 *
 * Every write is a revision-checked KV write (compare-and-set) retried on conflict, so
 * concurrent writers never lose each other's change; the registry record is written first, the
 * project's own copy (`cp_<p>_config`: `project`, `queue.<name>`) follows it. Errors are
 * ProjectError: a stable `code`, the `field` at fault, a message saying what to do next.
 */
export { isConflict } from './cas.js';
export { ResourceCatalog } from './catalog.js';
export { ProjectCopy, sameBinding } from './copies.js';
export { ProjectError } from './errors.js';
export { CreateProjectInput, MemberInput, UpdateProjectInput } from './inputs.js';
export { ProjectRegistry, type ProjectRegistryOptions, type QueueCreated } from './registry.js';
export { describeUser, Usage, type UsageKind, UsageLedger, UsageUser } from './usage.js';
