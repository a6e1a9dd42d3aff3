import { Bus, isPermissionDenied, quietLogger } from '@computepods/bus';
import { buckets, subjects } from '@computepods/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { Stack } from './stack.js';

/**
 * Two projects on one server, each with its own MajorDomo, as a lab runs them: a member of one
 * can neither read nor change the other, over NATS (the server keeps the accounts apart) or over
 * REST (each MajorDomo knows only its own project's tokens and members).
 */
describe('two projects: a member of one cannot reach the other', { timeout: 180_000 }, () => {
  let stack: Stack;
  const logger = quietLogger('tenants-test');
  const urls: Record<string, string> = {};
  const tokens: Record<string, string> = {};

  beforeAll(async () => {
    stack = await Stack.start('alpha');
    await stack.addProject('beta');
    await Promise.all([
      stack.start('majordomo'),
      stack.start('majordomo', { CP_PROJECT: 'beta' }, 'majordomo-beta'),
    ]);
    urls.alpha = await stack.httpUrl();
    urls.beta = await stack.httpUrl('majordomo-beta');
    // alice is a member of alpha only, with a REST token of alpha's.
    const added = await stack.cpctrl(['project', 'member', 'add', 'alice', '--role', 'member']);
    expect(added.code, added.stderr).toBe(0);
    const made = await stack.cpctrl(['-o', 'json', 'token', 'create', '--user', 'alice']);
    expect(made.code, made.stderr).toBe(0);
    tokens.alice = (JSON.parse(made.stdout) as { token: string }).token;
  });

  afterAll(async () => {
    await stack?.[Symbol.asyncDispose]();
  });

  it("over REST: alpha's member is served by alpha's MajorDomo and refused by beta's", async () => {
    const get = (project: string) =>
      fetch(`${urls[project]}/api/status`, {
        headers: { authorization: `Bearer ${tokens.alice}` },
      });
    await expect.poll(async () => (await get('alpha')).status, { timeout: 20_000 }).toBe(200);
    const beta = await get('beta');
    expect(beta.status).toBe(401);
    const build = await fetch(`${urls.beta}/api/builds`, {
      method: 'POST',
      headers: { authorization: `Bearer ${tokens.alice}`, 'content-type': 'application/json' },
      body: JSON.stringify({ path: 'out/x.upper' }),
    });
    expect(build.status).toBe(401);
  });

  it("over NATS: alpha's member credentials see nothing of beta and change nothing there", async () => {
    const alice = await Bus.connect({
      servers: stack.nats.url,
      credsFile: await stack.creds({ role: 'member', scope: 'alice' }),
      service: 'alice',
      project: 'alpha',
      logger,
      discoverable: false,
    });
    try {
      // Beta's MajorDomo is in another account, and alpha's member may ask only alpha's.
      const status = await alice.nc
        .request(subjects.api('beta', 'status'), '{}', { timeout: 2_000 })
        .then(
          () => undefined,
          (err: Error) => err,
        );
      expect(isPermissionDenied(status)).toBe(true);
      // Beta's records cannot be read by their bucket's name.
      const betaAdmin = await Bus.connect({
        servers: stack.nats.url,
        credsFile: await stack.addProject('beta'),
        service: 'beta-admin',
        project: 'beta',
        logger,
        discoverable: false,
      });
      try {
        await (await betaAdmin.kv(buckets.artefacts('beta'), z.unknown())).put('src/b.txt', {
          secret: 'beta',
        });
        const fromAlice = await alice.kv(buckets.artefacts('beta'), z.unknown());
        const read = await fromAlice.get('src/b.txt').then(
          (v) => v,
          (err: Error) => err,
        );
        expect(read === undefined || isPermissionDenied(read)).toBe(true);
        // A forged build request aimed at beta's chefs does not leave alpha's account.
        const before = (await betaAdmin.jsm.streams.info('cp_beta_builds')).state.messages;
        alice.nc.publish(subjects.buildRequest('beta', 'text'), '{}');
        await alice.nc.flush();
        expect((await betaAdmin.jsm.streams.info('cp_beta_builds')).state.messages).toBe(before);
      } finally {
        await betaAdmin.close();
      }
    } finally {
      await alice.close();
    }
  });
});
