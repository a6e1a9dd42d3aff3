import { readFileSync } from 'node:fs';
import { Bus, isPermissionDenied, quietLogger } from '@computepods/bus';
import { subjects } from '@computepods/protocol';
import { NatsServer, TempDir, until } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  AuthStore,
  type Grant,
  PERSON_ROLES,
  provisionProject,
  RESPONSE_TTL_MS,
  SERVICE_ROLES,
  serverConfigLines,
} from './index.js';

/** The user JWT's claims we check: its NATS permissions' response part. */
const UserClaims = z.object({
  nats: z.object({
    resp: z.object({ max: z.number(), ttl: z.number() }).optional(),
    pub: z.object({ allow: z.array(z.string()).optional() }).optional(),
  }),
});

/** The claims of the user JWT in a creds file (its first armoured block). */
function claimsOf(credsFile: string): z.infer<typeof UserClaims> {
  const text = readFileSync(credsFile, 'utf8');
  const jwt = /BEGIN NATS USER JWT-+\s+(\S+)\s/.exec(text)?.[1];
  if (!jwt) throw new Error(`no user JWT in ${credsFile}`);
  const payload = jwt.split('.')[1] ?? '';
  return UserClaims.parse(JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')));
}

/**
 * Response permissions are short-lived (roles.ts, RESPONSE_TTL_MS): nats-server keeps a record
 * of every reply subject delivered to a user with them (every JetStream delivery has one) until
 * their TTL. The credentials carry each role's TTL, a role still answers through it, a reply
 * later than it is refused, and the runner answers its own pilots however long staging takes.
 */
describe('response permissions: short-lived, still answering', () => {
  const dir = new TempDir('cp-resp-');
  const logger = quietLogger('resp-test');
  let store: AuthStore;
  let nats: NatsServer;
  const open: Bus[] = [];

  async function as(grant: Grant, discoverable = false): Promise<Bus> {
    const bus = await Bus.connect({
      servers: nats.url,
      credsFile: await store.grantCreds(grant),
      service: grant.role,
      project: grant.project,
      logger,
      discoverable,
      giveUpAfterMs: 10_000,
    });
    open.push(bus);
    return bus;
  }

  beforeAll(async () => {
    store = await AuthStore.open(dir.join('auth'));
    nats = await NatsServer.start({
      configLines: () => serverConfigLines(store, dir.join('resolver')),
    });
    await provisionProject({ store, servers: nats.url, project: 'alpha' });
  }, 60_000);

  afterAll(async () => {
    await Promise.allSettled(open.map((b) => b.close()));
    await nats?.[Symbol.asyncDispose]();
    dir[Symbol.dispose]();
  });

  it("puts each role's response TTL in its credentials, and none where nothing is answered", async () => {
    const seen: Record<string, unknown> = {};
    for (const role of [...SERVICE_ROLES, ...PERSON_ROLES]) {
      const scope = role === 'admin' || role === 'majordomo' ? undefined : 'x';
      const claims = claimsOf(await store.grantCreds({ role, project: 'alpha', scope }));
      seen[role] = claims.nats.resp ?? null;
    }
    // The JWT's ttl is a Go time.Duration: nanoseconds.
    expect(seen).toEqual({
      majordomo: { max: 1, ttl: 60_000_000_000 },
      chef: { max: 1, ttl: 10_000_000_000 },
      runner: { max: 1, ttl: 10_000_000_000 },
      fswatcher: { max: 1, ttl: 10_000_000_000 },
      inotify2nats: null,
      admin: null,
      member: null,
      viewer: null,
    });
    // None is the server's default (0 means 2 minutes), none longer than MajorDomo's.
    for (const ttl of Object.values(RESPONSE_TTL_MS)) expect(ttl).toBeLessThanOrEqual(60_000);
  });

  it('answers through them: a chef to how-to-build, a runner to task.control, a $SRV PING', async () => {
    const chef = await as({ role: 'chef', project: 'alpha', scope: 'latex' });
    const runner = await as({ role: 'runner', project: 'alpha', scope: 'q1' });
    const fsw = await as({ role: 'fswatcher', project: 'alpha', scope: 'pod1' }, true);
    const md = await as({ role: 'majordomo', project: 'alpha' });
    const member = await as({ role: 'member', project: 'alpha', scope: 'mia' });
    chef.nc.subscribe(subjects.howToBuild('alpha'), {
      callback: (_e, m) => void m.respond('chef'),
    });
    runner.nc.subscribe(subjects.taskControl('alpha'), {
      callback: (_e, m) => void m.respond('runner'),
    });
    await chef.nc.flush();
    await runner.nc.flush();
    const asked = await md.nc.request(subjects.howToBuild('alpha'), '{}', { timeout: 10_000 });
    expect(asked.string()).toBe('chef');
    const controlled = await member.nc.request(subjects.taskControl('alpha'), '{}', {
      timeout: 10_000,
    });
    expect(controlled.string()).toBe('runner');
    const ping = await md.nc.request('$SRV.PING.fswatcher', '', { timeout: 10_000 });
    expect(ping.json<{ name: string }>().name).toBe('fswatcher');
    // The next test's chef must be the only one answering how-to-build.
    await Promise.all([chef.close(), runner.close(), fsw.close()]);
  });

  it("refuses a chef's reply later than its TTL; a runner answers its own pilot's later", async () => {
    const ttl = (RESPONSE_TTL_MS.chef ?? 0) + 1_000;
    const chef = await as({ role: 'chef', project: 'alpha', scope: 'slow' });
    const md = await as({ role: 'majordomo', project: 'alpha' });
    const errors: Error[] = [];
    void (async () => {
      for await (const s of chef.nc.status()) if (s.type === 'error') errors.push(s.error as Error);
    })();
    chef.nc.subscribe(subjects.howToBuild('alpha'), {
      callback: (_e, m) => void setTimeout(() => m.respond('too late'), ttl),
    });
    await chef.nc.flush();
    // A runner's pilot holds the runner's credentials: the stage reply goes to its own inbox.
    const runner = await as({ role: 'runner', project: 'alpha', scope: 'q2' });
    const pilot = await as({ role: 'runner', project: 'alpha', scope: 'q2' });
    runner.nc.subscribe(subjects.pilotStage('alpha', 'q2'), {
      callback: (_e, m) => void setTimeout(() => m.respond('staged'), ttl),
    });
    await runner.nc.flush();
    const [late, staged] = await Promise.allSettled([
      md.nc.request(subjects.howToBuild('alpha'), '{}', { timeout: ttl + 3_000 }),
      pilot.nc.request(subjects.pilotStage('alpha', 'q2'), '{}', { timeout: ttl + 3_000 }),
    ]);
    expect(late.status, 'a reply past the TTL should not arrive').toBe('rejected');
    await until(() => errors.some(isPermissionDenied), "the chef's late reply refused");
    expect(staged.status === 'fulfilled' && staged.value.string()).toBe('staged');
  }, 60_000);
});
