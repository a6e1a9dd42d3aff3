import type { Bus } from '@computepods/bus';
import {
  ApiTokenRecord,
  buckets,
  CpError,
  Project,
  parseApiToken,
  type Role,
  sameSecret,
  secretMatches,
} from '@computepods/protocol';

/** Who is calling, as far as the API is concerned. */
export interface Principal {
  readonly user: string;
  readonly role: Role;
  /** The token's id (not secret); absent for the bootstrap token. */
  readonly tokenId?: string;
}

/** A caller refused: 401 (no, unknown or revoked token) or 403 (not a member, role too low). */
export class AccessError extends CpError<
  'CP_FORBIDDEN' | 'CP_NOT_A_MEMBER' | 'CP_TOKEN_REVOKED' | 'CP_UNAUTHORIZED'
> {
  constructor(
    readonly status: 401 | 403,
    code: 'CP_FORBIDDEN' | 'CP_NOT_A_MEMBER' | 'CP_TOKEN_REVOKED' | 'CP_UNAUTHORIZED',
    message: string,
  ) {
    super(code, message);
  }
}

const RANK: Record<Role, number> = { viewer: 0, member: 1, admin: 2 };

export function roleAllows(role: Role, needed: Role): boolean {
  return RANK[role] >= RANK[needed];
}

/** The same answer for a missing, malformed, unknown or wrong token: it tells nothing. */
const unauthenticated = () =>
  new AccessError(
    401,
    'CP_UNAUTHORIZED',
    'send "Authorization: Bearer <token>": a token from `cpctrl token create --user NAME` (or CP_API_TOKEN)',
  );

/**
 * Who may use the REST API, from the project's token bucket (`cp_<p>_tokens`, hashed) and its
 * project record (`cp_<p>_config`, key `project`: members and roles). Both are watched, so a
 * revoke or a role change applies to the next request and to open event streams (onChange).
 * CP_API_TOKEN (or the generated bootstrap token) is user `admin` with role admin.
 */
export class Access {
  readonly #tokens = new Map<string, ApiTokenRecord>();
  readonly #roles = new Map<string, Role>();
  readonly #listeners = new Set<() => void>();
  readonly #stops: (() => void)[] = [];
  /** Private: an Access object that ends up in a log line must not carry it. */
  readonly #bootstrap: string;

  private constructor(
    readonly project: string,
    bootstrap: string,
  ) {
    this.#bootstrap = bootstrap;
  }

  static async start(bus: Bus, project: string, bootstrap: string): Promise<Access> {
    const a = new Access(project, bootstrap);
    const tokens = await bus.kv(buckets.tokens(project), ApiTokenRecord, { history: 5 });
    const config = await bus.kv(buckets.config(project), Project, { history: 5 });
    // Read once before serving, so a token that exists is never refused for being unseen yet;
    // the watches then replay and follow every change.
    for (const [id, v] of await tokens.entries()) a.#tokens.set(id, v.value);
    a.#setProject((await config.get('project'))?.value);
    a.#stops.push(
      await tokens.watch((id, rec) => {
        if (rec) a.#tokens.set(id, rec);
        else a.#tokens.delete(id);
        a.#changed();
      }),
      await config.watch((_k, p) => {
        a.#setProject(p);
        a.#changed();
      }, 'project'),
    );
    return a;
  }

  #setProject(p: Project | undefined): void {
    this.#roles.clear();
    for (const m of p?.members ?? []) this.#roles.set(m.user, m.role);
  }

  #changed(): void {
    for (const l of this.#listeners) l();
  }

  /** Called after every change of tokens or members; returns an unsubscribe. */
  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** The caller behind `token`, or an AccessError (401 unknown/revoked, 403 not a member). */
  authenticate(token: string | undefined): Principal {
    if (!token) throw unauthenticated();
    if (sameSecret(token, this.#bootstrap)) return { user: 'admin', role: 'admin' };
    const parsed = parseApiToken(token);
    const rec = parsed && this.#tokens.get(parsed.id);
    if (!parsed || !rec || !secretMatches(parsed.secret, rec.sha256)) throw unauthenticated();
    if (rec.revoked)
      throw new AccessError(
        401,
        'CP_TOKEN_REVOKED',
        `token ${rec.id} was revoked; ask a project admin for a new one (cpctrl token create)`,
      );
    const role = this.#roles.get(rec.user);
    if (!role)
      throw new AccessError(
        403,
        'CP_NOT_A_MEMBER',
        `user ${rec.user} is not a member of project ${this.project}; a project admin adds them to "members" of the project record (KV ${buckets.config(this.project)}, key "project")`,
      );
    return { user: rec.user, role, tokenId: rec.id };
  }

  /** `p` may do what needs `needed`, or an AccessError (403) saying which role it takes. */
  authorize(p: Principal, needed: Role, what: string): void {
    if (!roleAllows(p.role, needed))
      throw new AccessError(
        403,
        'CP_FORBIDDEN',
        `user ${p.user} is a ${p.role} of project ${this.project}; ${what} needs the ${needed} role (ask a project admin)`,
      );
  }

  stop(): void {
    for (const s of this.#stops) s();
    this.#listeners.clear();
  }
}
