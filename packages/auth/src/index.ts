/**
 * NATS operator mode for ComputePods: a project is a NATS account (its own subjects, streams,
 * buckets and JetStream quota, kept apart by the server), and every service and person connects
 * with credentials that allow exactly what its role does (roles.ts, the one table).
 *
 *   const store = await AuthStore.open(`${state}/auth`);
 *   const conf = serverConfigLines(store, `${state}/nats/resolver`);   // into nats-server's config
 *   await provisionRegistry(store, url);
 *   await provisionProject({ store, servers: url, project: 'demo' });
 *   const creds = await store.grantCreds({ role: 'chef', project: 'demo', scope: 'latex' });
 *   // NATS_CREDS=<creds> for that chef
 */

export { type BootstrapOptions, bootstrapProject } from './bootstrap.js';
export { AccountPushError, AuthStoreError } from './errors.js';
export {
  grant,
  PROJECT_BUCKETS,
  type ProvisionOptions,
  provisionProject,
  provisionRegistry,
  pushAccount,
  REGISTRY_BUCKETS,
  revokeUser,
} from './provision.js';
export {
  type Grant,
  inboxPrefix,
  type NatsPermissions,
  PERSON_ROLES,
  permissionsFor,
  RESPONSE_TTL_MS,
  type RoleName,
  SERVICE_ROLES,
  userName,
} from './roles.js';
export { serverConfigLines } from './server-config.js';
export {
  AuthStore,
  DEFAULT_DISK_BYTES,
  DEFAULT_MEM_BYTES,
  type ProjectLimits,
  projectAccount,
  REGISTRY_ACCOUNT,
  SYSTEM_ACCOUNT,
} from './store.js';
