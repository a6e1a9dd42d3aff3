import { readFileSync } from 'node:fs';
import {
  Bus,
  defaultReplicas,
  ensureProjectStreams,
  type Logger,
  tlsFromEnv,
} from '@computepods/bus';
import { buckets } from '@computepods/protocol';
import { connect, credsAuthenticator } from '@nats-io/transport-node';
import { z } from 'zod';
import { AccountPushError } from './errors.js';
import type { Grant } from './roles.js';
import { type AuthStore, DEFAULT_DISK_BYTES, type ProjectLimits, projectAccount } from './store.js';

/** Every bucket a project's services open, with the history each keeps. */
export const PROJECT_BUCKETS = (p: string): { name: string; history: number }[] => [
  { name: buckets.artefacts(p), history: 1 },
  { name: buckets.traces(p), history: 1 },
  { name: buckets.rules(p), history: 1 },
  { name: buckets.goals(p), history: 1 },
  { name: buckets.tasks(p), history: 5 },
  { name: buckets.builds(p), history: 1 },
  { name: buckets.config(p), history: 5 },
  { name: buckets.tokens(p), history: 5 },
];

export const REGISTRY_BUCKETS = [
  buckets.projects(),
  buckets.resources(),
  buckets.profiles(),
  buckets.usage(),
];

const ClaimsReply = z.object({
  data: z.object({ code: z.number() }).partial().optional(),
  error: z.object({ code: z.number().optional(), description: z.string().optional() }).optional(),
});

/**
 * Hands an account JWT to a running server's resolver as the system account's user. The server
 * answers on every node of a cluster; one answer that took it is enough.
 */
export async function pushAccount(
  store: AuthStore,
  servers: string,
  account: string,
  jwt: string,
): Promise<void> {
  const tls = tlsFromEnv();
  const nc = await connect({
    servers: servers.split(','),
    authenticator: credsAuthenticator(readFileSync(await store.systemCreds())),
    name: 'computepods-provision',
    ...(tls ? { tls: { ...tls } } : {}),
  });
  try {
    const msg = await nc.request('$SYS.REQ.CLAIMS.UPDATE', jwt, { timeout: 5_000 });
    const reply = ClaimsReply.safeParse(msg.json());
    if (!reply.success) throw new AccountPushError(account, `unexpected answer ${msg.string()}`);
    if (reply.data.error)
      throw new AccountPushError(
        account,
        reply.data.error.description ?? `error ${reply.data.error.code}`,
      );
  } finally {
    await nc.close();
  }
}

export interface ProvisionOptions {
  readonly store: AuthStore;
  readonly servers: string;
  readonly project: string;
  readonly limits?: ProjectLimits;
  readonly logger?: Logger;
}

/**
 * Makes a project a tenant: its NATS account (with its JetStream quota) on the running server,
 * then, as the project's admin, every stream and bucket its services use, so no service needs
 * the right to create any. Idempotent: run it again to change the quota or repair.
 * Returns the project admin's creds file.
 */
export async function provisionProject(options: ProvisionOptions): Promise<string> {
  const { store, servers, project } = options;
  const name = projectAccount(project);
  const account = await store.account(name, options.limits ? { limits: options.limits } : {});
  await pushAccount(store, servers, name, account.jwt);
  const creds = await store.grantCreds({ role: 'admin', project });
  const bus = await connectAs(creds, servers, project, 'provision', options.logger);
  try {
    // The dead-letter and task-log bounds are reserved from the quota: an eighth and a quarter.
    // JetStream counts every replica against the account: on a cluster (CP_REPLICAS=3) a bound
    // reserves three times its bytes, so each is a third as large (else R3 cannot be made).
    const quota = (account.limits?.diskBytes ?? DEFAULT_DISK_BYTES) / defaultReplicas();
    await ensureProjectStreams(bus, project, {
      dlqMaxBytes: Math.floor(quota / 8),
      taskLogMaxBytes: Math.floor(quota / 4),
    });
    for (const b of PROJECT_BUCKETS(project))
      await bus.kv(b.name, z.unknown(), { history: b.history });
  } finally {
    await bus.close();
  }
  return creds;
}

/** The lab-wide registry (projects, resources, profiles): its account, buckets, admin creds. */
export async function provisionRegistry(
  store: AuthStore,
  servers: string,
  logger?: Logger,
): Promise<string> {
  const creds = await store.registryCreds();
  const bus = await connectAs(creds, servers, 'registry', 'provision', logger);
  try {
    for (const b of REGISTRY_BUCKETS) await bus.kv(b, z.unknown());
  } finally {
    await bus.close();
  }
  return creds;
}

/**
 * Revokes every credential a user of a project was ever issued, on the running server at once:
 * new connections are refused and open ones closed. Issue new ones with grant().
 */
export async function revokeUser(
  store: AuthStore,
  servers: string,
  project: string,
  user: string,
): Promise<number> {
  const account = projectAccount(project);
  const { jwt, revokedKeys } = await store.revoke(account, user);
  await pushAccount(store, servers, account, jwt);
  return revokedKeys;
}

/** Credentials for one service or person of a project (see roles.ts for what each may do). */
export function grant(store: AuthStore, g: Grant): Promise<string> {
  return store.grantCreds(g);
}

async function connectAs(
  credsFile: string,
  servers: string,
  project: string,
  service: string,
  logger?: Logger,
): Promise<Bus> {
  return Bus.connect({
    servers,
    credsFile,
    service,
    project,
    discoverable: false,
    giveUpAfterMs: 10_000,
    ...(logger ? { logger } : {}),
  });
}
