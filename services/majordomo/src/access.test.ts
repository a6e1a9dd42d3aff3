import { Bus, quietLogger } from '@computepods/bus';
import { ApiTokenRecord, buckets, newApiToken } from '@computepods/protocol';
import { NatsServer, until } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { Access, AccessError, roleAllows } from './access.js';

/** Who may call the REST API, from the project's token bucket and project record (real NATS). */
describe('Access', { timeout: 60_000 }, () => {
  const project = 'acc';
  let nats: NatsServer;
  let bus: Bus;
  let access: Access;
  const bootstrap = 'bootstrap-token-0123456789abcdef';
  const made = {
    alice: newApiToken('alice'),
    bob: newApiToken('bob'),
    dave: newApiToken('dave'),
  };
  const refusal = (fn: () => unknown) => {
    try {
      fn();
    } catch (err) {
      expect(err).toBeInstanceOf(AccessError);
      const e = err as AccessError;
      return { status: e.status, code: e.code, message: e.message };
    }
    throw new Error('expected a refusal');
  };
  const putMembers = async (members: unknown) => {
    const kv = await bus.kv(buckets.config(project), z.unknown());
    const now = new Date().toISOString();
    await kv.put('project', { name: project, members, created: now, updated: now });
  };

  beforeAll(async () => {
    nats = await NatsServer.start();
    const logger = quietLogger('access-test');
    bus = await Bus.connect({
      servers: nats.url,
      service: 'access-test',
      project,
      logger,
      discoverable: false,
    });
    const tokens = await bus.kv(buckets.tokens(project), ApiTokenRecord);
    for (const { record } of Object.values(made)) await tokens.put(record.id, record);
    await putMembers([
      { user: 'alice', role: 'viewer' },
      { user: 'bob', role: 'member' },
    ]);
    // Tokens and members written before start are known on the first request.
    access = await Access.start(bus, project, bootstrap);
  });
  afterAll(async () => {
    access?.stop();
    await bus?.close();
    await nats?.[Symbol.asyncDispose]();
  });

  it('orders roles: admin ⊇ member ⊇ viewer', () => {
    expect(roleAllows('admin', 'member')).toBe(true);
    expect(roleAllows('member', 'viewer')).toBe(true);
    expect(roleAllows('viewer', 'member')).toBe(false);
    expect(roleAllows('member', 'admin')).toBe(false);
  });

  it('knows the bootstrap token as user admin, and per-user tokens by their user’s role', () => {
    expect(access.authenticate(bootstrap)).toEqual({ user: 'admin', role: 'admin' });
    expect(access.authenticate(made.alice.token)).toEqual({
      user: 'alice',
      role: 'viewer',
      tokenId: made.alice.record.id,
    });
    expect(access.authenticate(made.bob.token).role).toBe('member');
  });

  it('gives one 401 for a missing, malformed, unknown or wrong token', () => {
    const wrongSecret = `cpt_${made.alice.record.id}_${'x'.repeat(43)}`;
    const unknownId = `cpt_0000000000000000_${made.alice.token.split('_').slice(2).join('_')}`;
    const answers = [undefined, '', 'nope', `${bootstrap}x`, wrongSecret, unknownId].map((t) =>
      refusal(() => access.authenticate(t)),
    );
    expect(new Set(answers.map((a) => JSON.stringify(a))).size).toBe(1);
    expect(answers[0]).toMatchObject({ status: 401, code: 'CP_UNAUTHORIZED' });
  });

  it('refuses a user who is not a member (403) and a role too small (403 naming it)', () => {
    expect(refusal(() => access.authenticate(made.dave.token))).toMatchObject({
      status: 403,
      code: 'CP_NOT_A_MEMBER',
      message: expect.stringMatching(/user dave is not a member of project acc/),
    });
    const alice = access.authenticate(made.alice.token);
    expect(refusal(() => access.authorize(alice, 'member', 'POST /api/builds'))).toMatchObject({
      status: 403,
      code: 'CP_FORBIDDEN',
      message: expect.stringMatching(
        /alice is a viewer .*POST \/api\/builds needs the member role/,
      ),
    });
    access.authorize(access.authenticate(made.bob.token), 'member', 'POST /api/builds');
  });

  it('follows role changes and revokes, and tells listeners', async () => {
    let changes = 0;
    const stop = access.onChange(() => {
      changes++;
    });
    await putMembers([
      { user: 'alice', role: 'admin' },
      { user: 'bob', role: 'member' },
    ]);
    await until(() => access.authenticate(made.alice.token).role === 'admin', 'alice admin');
    const tokens = await bus.kv(buckets.tokens(project), ApiTokenRecord);
    await tokens.put(made.bob.record.id, {
      ...made.bob.record,
      revoked: new Date().toISOString(),
    });
    await until(() => {
      try {
        access.authenticate(made.bob.token);
        return false;
      } catch (err) {
        return (err as AccessError).code === 'CP_TOKEN_REVOKED';
      }
    }, 'bob’s token refused as revoked');
    expect(changes).toBeGreaterThanOrEqual(2);
    stop();
  });

  it('knows a token made after start', async () => {
    const late = newApiToken('alice');
    await (await bus.kv(buckets.tokens(project), ApiTokenRecord)).put(late.record.id, late.record);
    await until(() => {
      try {
        return access.authenticate(late.token).user === 'alice';
      } catch {
        return false;
      }
    }, 'the new token known');
  });

  it('refuses every per-user token while the project record is invalid (fails closed)', async () => {
    await putMembers([{ user: 'alice', role: 'owner' }]);
    await until(() => {
      try {
        access.authenticate(made.alice.token);
        return false;
      } catch (err) {
        return (err as AccessError).code === 'CP_NOT_A_MEMBER';
      }
    }, 'alice refused');
    expect(access.authenticate(bootstrap).role).toBe('admin');
  });
});
