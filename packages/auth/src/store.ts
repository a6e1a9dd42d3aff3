import {
  appendFileSync,
  chmodSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { checkProject } from '@computepods/protocol';
import { encodeAccount, encodeOperator, encodeUser, fmtCreds } from '@nats-io/jwt';
import { createAccount, createOperator, createUser, fromSeed, type KeyPair } from '@nats-io/nkeys';
import { AuthStoreError } from './errors.js';
import { type Grant, permissionsFor, userName } from './roles.js';

/** JetStream limits of a project's account: one project cannot fill the disk for all. */
export interface ProjectLimits {
  /** File storage for the project's streams and buckets, bytes (default 1 GiB). */
  readonly diskBytes?: number;
  /** Memory storage, bytes (default 64 MiB). */
  readonly memBytes?: number;
}

export const DEFAULT_DISK_BYTES = 1024 ** 3;

/** An account as the store signed it: `changed` when its JWT must reach the server again. */
export interface AccountKeys {
  readonly key: KeyPair;
  readonly publicKey: string;
  readonly jwt: string;
  readonly changed: boolean;
  /** Its limits in force (undefined: the defaults). */
  readonly limits: ProjectLimits | undefined;
}

/** What the store remembers of an account to sign its JWT again (limits, revoked user keys). */
interface AccountState {
  limits?: ProjectLimits | undefined;
  system?: boolean | undefined;
  /** Revoked user public keys → the time (s) before which their JWTs are refused. */
  revocations: Record<string, number>;
}
export const DEFAULT_MEM_BYTES = 64 * 1024 ** 2;

/** Account names: the system account, the lab-wide registry, and `p-<project>` per project. */
export const SYSTEM_ACCOUNT = 'SYS';
export const REGISTRY_ACCOUNT = 'registry';
export const projectAccount = (project: string) => `p-${checkProject(project)}`;

/**
 * The NATS operator's keys and every account and credential ComputePods made, in one directory
 * (mode 0700, files 0600): the lab admin's trust root. `up` keeps it in `<state>/auth`.
 *
 *   operator.nk / operator.jwt        the operator (signs accounts)
 *   accounts/<name>.nk / .jwt         SYS, registry, p-<project>
 *   creds/<account>/<user>.creds      a user's JWT + seed, as `nats --creds` and NATS_CREDS take
 */
export class AuthStore {
  private constructor(
    readonly dir: string,
    readonly operator: KeyPair,
    readonly operatorJwt: string,
  ) {}

  /** Opens the store, creating the operator, SYS and registry accounts the first time. */
  static async open(dir: string): Promise<AuthStore> {
    mkdirSync(join(dir, 'accounts'), { recursive: true, mode: 0o700 });
    mkdirSync(join(dir, 'creds'), { recursive: true, mode: 0o700 });
    chmodSync(dir, 0o700);
    const operator = loadOrCreateKey(join(dir, 'operator.nk'), createOperator);
    const jwtPath = join(dir, 'operator.jwt');
    let store: AuthStore;
    if (existsSync(jwtPath)) store = new AuthStore(dir, operator, readFileSync(jwtPath, 'utf8'));
    else {
      // The system account's key must exist before the operator JWT names it.
      const sys = loadOrCreateKey(join(dir, 'accounts', `${SYSTEM_ACCOUNT}.nk`), createAccount);
      const jwt = await encodeOperator('computepods', operator, {
        system_account: sys.getPublicKey(),
      });
      writeSecret(jwtPath, jwt);
      store = new AuthStore(dir, operator, jwt);
    }
    await store.account(SYSTEM_ACCOUNT, { system: true });
    await store.account(REGISTRY_ACCOUNT, {});
    return store;
  }

  /** Opens an existing store (a client side: cpctrl as lab admin); never creates one. */
  static async existing(dir: string): Promise<AuthStore> {
    if (!existsSync(join(dir, 'operator.jwt')))
      throw new AuthStoreError(
        `${dir} is not a ComputePods auth dir (no operator.jwt): point CP_AUTH_DIR at the one \`up\` made (<state>/auth), or ask your lab admin for credentials`,
      );
    return AuthStore.open(dir);
  }

  /**
   * The account's key pair and JWT, made (and signed by the operator) if missing, and signed
   * again when its limits change. `changed` says the running server must be told (pushAccount).
   */
  async account(
    name: string,
    options: { system?: boolean; limits?: ProjectLimits } = {},
  ): Promise<AccountKeys> {
    const key = loadOrCreateKey(join(this.dir, 'accounts', `${name}.nk`), createAccount);
    const jwtPath = join(this.dir, 'accounts', `${name}.jwt`);
    const state = this.#state(name);
    const limits = options.limits ?? state.limits;
    if (existsSync(jwtPath) && JSON.stringify(limits) === JSON.stringify(state.limits))
      return {
        key,
        publicKey: key.getPublicKey(),
        jwt: readFileSync(jwtPath, 'utf8'),
        changed: false,
        limits,
      };
    return this.#sign(name, key, { ...state, limits, system: options.system ?? state.system });
  }

  /**
   * Revokes every credential of `user` in the account issued before now: the account JWT lists
   * the user's keys with the time, and the server refuses them (and drops their connections)
   * once it has the new JWT (pushAccount).
   */
  async revoke(accountName: string, user: string): Promise<{ jwt: string; revokedKeys: number }> {
    const key = loadOrCreateKey(join(this.dir, 'accounts', `${accountName}.nk`), createAccount);
    const state = this.#state(accountName);
    const keyLog = readIf(join(this.dir, 'creds', accountName, `${user}.keys`)) ?? '';
    const keys = keyLog.split('\n').filter(Boolean);
    const now = Math.floor(Date.now() / 1000);
    const revocations = { ...state.revocations };
    for (const k of keys) revocations[k] = now;
    const { jwt } = await this.#sign(accountName, key, { ...state, revocations });
    return { jwt, revokedKeys: keys.length };
  }

  #statePath(name: string): string {
    return join(this.dir, 'accounts', `${name}.state.json`);
  }

  #state(name: string): AccountState {
    const text = readIf(this.#statePath(name));
    if (!text) return { revocations: {} };
    try {
      return JSON.parse(text) as AccountState;
    } catch (err) {
      throw new AuthStoreError(
        `${this.#statePath(name)} is not valid JSON: restore it from a backup`,
        {
          cause: err,
        },
      );
    }
  }

  async #sign(name: string, key: KeyPair, state: AccountState): Promise<AccountKeys> {
    const jetstream = state.system
      ? {}
      : {
          mem_storage: state.limits?.memBytes ?? DEFAULT_MEM_BYTES,
          disk_storage: state.limits?.diskBytes ?? DEFAULT_DISK_BYTES,
          streams: -1,
          consumer: -1,
        };
    const jwt = await encodeAccount(
      name,
      key,
      {
        limits: {
          subs: -1,
          data: -1,
          payload: -1,
          imports: -1,
          exports: -1,
          wildcards: true,
          conn: -1,
          leaf: -1,
          ...jetstream,
        },
        ...(Object.keys(state.revocations).length ? { revocations: state.revocations } : {}),
      },
      { signer: this.operator },
    );
    writeSecret(join(this.dir, 'accounts', `${name}.jwt`), jwt);
    writeSecret(this.#statePath(name), JSON.stringify(state, null, 2));
    return { key, publicKey: key.getPublicKey(), jwt, changed: true, limits: state.limits };
  }

  /** Every account JWT made so far, by public key: the server's resolver_preload. */
  accountJwts(): Map<string, string> {
    const out = new Map<string, string>();
    const dir = join(this.dir, 'accounts');
    for (const name of listNames(dir, '.jwt')) {
      const key = loadKey(join(dir, `${name}.nk`));
      out.set(key.getPublicKey(), readFileSync(join(dir, `${name}.jwt`), 'utf8'));
    }
    return out;
  }

  get systemAccountKey(): string {
    return loadKey(join(this.dir, 'accounts', `${SYSTEM_ACCOUNT}.nk`)).getPublicKey();
  }

  /** A user of an account with exactly these permissions: writes and returns its creds file. */
  async userCreds(
    accountName: string,
    user: string,
    permissions: {
      pub?: { allow: string[] };
      sub?: { allow: string[] };
      resp?: { max: number; ttl: number };
    },
  ): Promise<string> {
    const { key: account } = await this.account(accountName);
    const dir = join(this.dir, 'creds', accountName);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const path = join(dir, `${user}.creds`);
    // A new key each time: re-issuing replaces the old credentials' key (the old JWT stays
    // valid until revoked; revocation is per account JWT).
    const ukp = createUser();
    const jwt = await encodeUser(user, ukp, account, permissions);
    // Every key issued to the user, appended (one short write: safe beside other writers), so a
    // revocation can name them all.
    appendFileSync(join(dir, `${user}.keys`), `${ukp.getPublicKey()}\n`, { mode: 0o600 });
    writeSecret(path, Buffer.from(fmtCreds(jwt, ukp)).toString('utf8'));
    return path;
  }

  /** The system account's user (pushes account JWTs to the server). */
  systemCreds(): Promise<string> {
    return this.userCreds(SYSTEM_ACCOUNT, 'sys', {});
  }

  /** The lab-wide registry's admin (projects, resources, profiles). */
  registryCreds(): Promise<string> {
    return this.userCreds(REGISTRY_ACCOUNT, 'admin', {
      pub: { allow: ['>'] },
      sub: { allow: ['>'] },
    });
  }

  /** Credentials for one role in one project, least privilege (see roles.ts). */
  grantCreds(grant: Grant): Promise<string> {
    return this.userCreds(projectAccount(grant.project), userName(grant), permissionsFor(grant));
  }

  /** Where grantCreds wrote (or would write) a grant's creds file. */
  credsPath(grant: Grant): string {
    return join(this.dir, 'creds', projectAccount(grant.project), `${userName(grant)}.creds`);
  }

  projects(): string[] {
    return listNames(join(this.dir, 'accounts'), '.jwt')
      .filter((n) => n.startsWith('p-'))
      .map((n) => n.slice(2));
  }
}

function readIf(path: string): string | undefined {
  return existsSync(path) ? readFileSync(path, 'utf8') : undefined;
}

function listNames(dir: string, ext: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith(ext))
    .map((f) => f.slice(0, -ext.length))
    .sort();
}

function loadKey(path: string): KeyPair {
  try {
    return fromSeed(readFileSync(path));
  } catch (err) {
    throw new AuthStoreError(`cannot read the key ${path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

function loadOrCreateKey(path: string, create: () => KeyPair): KeyPair {
  if (existsSync(path)) return loadKey(path);
  const kp = create();
  writeSecret(path, Buffer.from(kp.getSeed()).toString('utf8'));
  return kp;
}

/** Written whole (temp name, rename) and readable by the owner alone. */
function writeSecret(path: string, content: string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, content, { mode: 0o600 });
  renameSync(tmp, path);
}
