import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  AuthStore,
  provisionProject,
  provisionRegistry,
  serverConfigLines,
} from '@computepods/auth';
import { Bus, quietLogger } from '@computepods/bus';
import { buckets, Project, ResolvedQueue } from '@computepods/protocol';
import { NatsServer, runCommand, TempDir, until } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/** cpctrl as its users run it: its bundle while fresh, else its sources (bin/cpctrl.js). */
const main = fileURLToPath(new URL('../bin/cpctrl.js', import.meta.url));

/**
 * In secure mode the lab-wide registry and each project are different NATS accounts: cpctrl
 * writes the registry with the registry admin's credentials and the project's own copy with the
 * project admin's, both found in the auth dir, as `up` leaves them.
 */
describe('cpctrl project and queue in secure mode (operator mode, one account per project)', {
  timeout: 240_000,
}, () => {
  const dir = new TempDir('cp-cpctrl-secure-');
  let store: AuthStore;
  let nats: NatsServer;
  const open: Bus[] = [];
  const logger = quietLogger('cpctrl-secure-test');

  beforeAll(async () => {
    store = await AuthStore.open(dir.join('auth'));
    nats = await NatsServer.start({
      configLines: () => serverConfigLines(store, dir.join('resolver')),
    });
    await provisionRegistry(store, nats.url);
    await provisionProject({ store, servers: nats.url, project: 'alpha' });
  }, 60_000);
  afterAll(async () => {
    await Promise.allSettled(open.map((b) => b.close()));
    await nats?.[Symbol.asyncDispose]();
    dir[Symbol.dispose]();
  });

  const connect = async (credsFile: string) => {
    const bus = await Bus.connect({
      servers: nats.url,
      credsFile,
      service: 'test',
      project: 'alpha',
      logger,
      discoverable: false,
      giveUpAfterMs: 10_000,
    });
    open.push(bus);
    return bus;
  };

  /** cpctrl as the lab admin (the auth dir), or with `creds` alone (no auth dir) as a person. */
  const run = async (creds: string | undefined, args: string[]) => {
    const { CP_PROJECT: _p, NATS_CREDS: _c, CPCTRL_OUTPUT: _o, ...inherited } = process.env;
    const { code, stdout, stderr } = await runCommand(
      process.execPath,
      [main, '-o', 'json', ...args],
      {
        env: {
          ...inherited,
          NATS_URL: nats.url,
          CP_AUTH_DIR: creds ? dir.join('no-auth') : dir.join('auth'),
          ...(creds ? { NATS_CREDS: creds } : {}),
          CPCTRL_CONFIG: dir.join('cpctrl.json'),
        },
      },
    );
    return { code, out: stdout ? JSON.parse(stdout) : undefined, stderr };
  };
  const cpctrl = (...args: string[]) => run(undefined, args);

  it('writes the registry and the project copy each in its own account', async () => {
    const made = await cpctrl('project', 'create', 'alpha', '--admin', 'alice');
    expect(made.code, made.stderr).toBe(0);
    // A new project is made a tenant first: its NATS account with its quota, its streams and
    // buckets, its admin's credentials; then its record.
    const beta = await cpctrl(
      'project',
      'create',
      'beta',
      '--admin',
      'alice',
      '--storage-quota',
      '2M',
    );
    expect(beta.code, beta.stderr).toBe(0);
    expect((await cpctrl('project', 'list')).out.map((p: Project) => p.name)).toEqual([
      'alpha',
      'beta',
    ]);
    const betaAdmin = await connect(await store.grantCreds({ role: 'admin', project: 'beta' }));
    expect((await betaAdmin.jsm.streams.info('cp_beta_files')).config.name).toBe('cp_beta_files');
    expect((await betaAdmin.jsm.getAccountInfo()).limits.max_storage).toBe(2 * 1024 ** 2);
    const raised = await cpctrl('project', 'update', 'beta', '--storage-quota', '3M');
    expect(raised.code, JSON.stringify(raised.out) + raised.stderr).toBe(0);
    await until(
      async () => (await betaAdmin.jsm.getAccountInfo()).limits.max_storage === 3 * 1024 ** 2,
      'the raised quota in force',
    );
    const bad = await cpctrl('project', 'update', 'beta', '--storage-quota', 'lots');
    expect(bad.out.error.message).toMatch(/--storage-quota "lots": give bytes/);

    const bob = await cpctrl('project', 'member', 'add', 'bob', '--role', 'member', '-p', 'alpha');
    expect(bob.code, bob.stderr).toBe(0);
    const file = dir.join('box.json');
    writeFileSync(
      file,
      JSON.stringify({
        type: 'local',
        name: 'box',
        jobs_local_dir: dir.join('jobs'),
        jobs_runner_config: {},
        jobs_poll_interval: 0,
        tasks_local_dir: dir.join('tasks'),
        tasks_python_config: { default_version: '3.12', versions: { '3.12': '/usr/bin/python3' } },
        tasks_pixi_config: {},
      }),
    );
    expect((await cpctrl('resource', 'create', '-f', file)).code).toBe(0);
    const q = await cpctrl('queue', 'create', 'default', '--resource', 'box', '-p', 'alpha');
    expect(q.code, q.stderr).toBe(0);

    // The registry account holds the record and the resource ...
    const registry = await connect(await store.registryCreds());
    const record = (await (await registry.kv(buckets.projects(), Project)).get('alpha'))?.value;
    expect(record?.members.map((m) => m.user)).toEqual(['alice', 'bob']);
    // ... and the project's own account its copy, with the queue resolved, for its services.
    const own = await connect(await store.grantCreds({ role: 'admin', project: 'alpha' }));
    const config = buckets.config('alpha');
    expect((await (await own.kv(config, Project)).get('project'))?.value).toEqual(record);
    const resolved = (await (await own.kv(config, ResolvedQueue)).get('queue.default'))?.value;
    expect(resolved).toMatchObject({ queue: { name: 'default' }, resource: { name: 'box' } });

    const used = await cpctrl('resource', 'delete', 'box');
    expect(used.out.error.code).toBe('CP_IN_USE');

    // A member's credentials reach only the project's account: its own copy answers them, and
    // a lab-wide command says whose credentials it needs.
    const member = await store.grantCreds({ role: 'member', project: 'alpha', scope: 'bob' });
    const shown = await run(member, ['-p', 'alpha', 'project', 'show']);
    expect(shown.code, JSON.stringify(shown.out) + shown.stderr).toBe(0);
    expect(shown.out).toEqual(record);
    expect((await run(member, ['-p', 'alpha', 'queue', 'list'])).out).toEqual([
      { name: 'default', resource: 'box', concurrency: 8 },
    ]);
    const list = await run(member, ['-p', 'alpha', 'project', 'list']);
    expect(['CP_NO_REGISTRY', 'CP_FORBIDDEN']).toContain(list.out.error.code);
    expect(list.out.error.message).toMatch(/lab admin/);
    const add = await run(member, [
      '-p',
      'alpha',
      'project',
      'member',
      'add',
      'eve',
      '--role',
      'admin',
    ]);
    expect(add.code).toBe(1);
    expect(add.out.error.message).toMatch(/lab admin/);
  });
});
