import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { NatsServer, runCommand, TempDir } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/** cpctrl as its users run it: its bundle while fresh, else its sources (bin/cpctrl.js). */
const main = fileURLToPath(new URL('../bin/cpctrl.js', import.meta.url));

describe('cpctrl project, member and queue, as processes over a real nats-server', {
  timeout: 240_000,
}, () => {
  let nats: NatsServer;
  const dir = new TempDir('cp-cpctrl-project-');
  beforeAll(async () => {
    nats = await NatsServer.start();
  });
  afterAll(async () => {
    await nats?.[Symbol.asyncDispose]();
    dir[Symbol.dispose]();
  });

  /** Runs cpctrl as its own process; stdout and stderr kept apart. */
  const run = async (args: string[]) => {
    // The current project comes from the config file (`project use`), not from the environment;
    // no auth dir: the registry and the projects share this one open server.
    const { CP_PROJECT: _p, NATS_CREDS: _c, CPCTRL_OUTPUT: _o, ...inherited } = process.env;
    const env = {
      ...inherited,
      NATS_URL: nats.url,
      CP_AUTH_DIR: dir.join('no-auth'),
      CPCTRL_CONFIG: dir.join('cpctrl.json'),
    };
    const { code, stdout, stderr } = await runCommand(process.execPath, [main, ...args], { env });
    return { code, stdout, stderr };
  };
  /** With -o json: stdout must be one JSON document, nothing else. */
  const json = async (...args: string[]) => {
    const r = await run(['-o', 'json', ...args]);
    return { ...r, out: r.stdout ? JSON.parse(r.stdout) : undefined };
  };

  it('creates, shows, updates and lists projects; the current one is the default', async () => {
    const made = await json(
      'project',
      'create',
      'thesis',
      '--description',
      'my PhD',
      '--tag',
      'phd',
      '--tag',
      'tex',
      '--admin',
      'alice',
    );
    expect(made.code).toBe(0);
    expect(made.out).toMatchObject({
      name: 'thesis',
      description: 'my PhD',
      tags: ['phd', 'tex'],
      active: true,
      members: [{ user: 'alice', role: 'admin' }],
    });
    const again = await json('project', 'create', 'thesis', '--admin', 'bob');
    expect(again.code).toBe(1);
    expect(again.out.error).toMatchObject({ code: 'CP_EXISTS', field: 'name' });
    const bad = await json('project', 'create', 'No.Dots', '--admin', 'bob');
    expect(bad.out.error).toMatchObject({ code: 'CP_INVALID', field: 'name' });

    const text = await run(['project', 'create', 'paper', '--admin', 'bob']);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/project paper created.*\n.*cpctrl project use paper/);

    expect((await json('project', 'use', 'thesis')).code).toBe(0);
    expect((await json('project', 'show')).out.name).toBe('thesis');
    const list = await json('project', 'list');
    expect(list.out.map((p: { name: string }) => p.name)).toEqual(['paper', 'thesis']);
    expect((await run(['project', 'list'])).stdout).toMatch(/\* thesis/);

    const paused = await json('project', 'update', 'thesis', '--active', 'false', '--tag', 'x');
    expect(paused.out).toMatchObject({ active: false, tags: ['x'], description: 'my PhD' });
    const shown = await run(['project', 'show']);
    expect(shown.stdout).toMatch(/active:\s+no: new builds are refused/);
    expect((await run(['project', 'update', 'thesis', '--active', 'maybe'])).code).not.toBe(0);
    expect((await json('project', 'update', 'thesis', '--active', 'true')).out.active).toBe(true);

    const help = await run(['project', 'update', '--help']);
    expect(help.stdout).toMatch(/--active <bool>/);
  });

  it('adds and removes members of the current project or of --project P, keeping an admin', async () => {
    const bob = await json('project', 'member', 'add', 'bob', '--role', 'member');
    expect(bob.out).toEqual([
      { user: 'alice', role: 'admin' },
      { user: 'bob', role: 'member' },
    ]);
    const other = await json(
      'project',
      'member',
      'add',
      'carol',
      '--role',
      'viewer',
      '--project',
      'paper',
    );
    expect(other.code).toBe(0);
    expect((await json('project', 'show', 'paper')).out.members).toContainEqual({
      user: 'carol',
      role: 'viewer',
    });
    expect((await json('project', 'member', 'list')).out).toHaveLength(2);
    const last = await json('project', 'member', 'remove', 'alice');
    expect(last.code).toBe(1);
    expect(last.out.error.code).toBe('CP_LAST_ADMIN');
    expect(last.out.error.message).toMatch(/--role admin/);
    const noRole = await run(['project', 'member', 'add', 'dan']);
    expect(noRole.code).not.toBe(0);
    expect(noRole.stderr).toMatch(/--role/);
    expect((await json('project', 'member', 'remove', 'bob')).code).toBe(0);
  });

  it('binds queues, protects what they use, and deletes in order', async () => {
    const file = dir.join('local.json');
    writeFileSync(
      file,
      JSON.stringify({
        type: 'local',
        name: 'Local box',
        id: 'box',
        jobs_local_dir: dir.join('jobs'),
        jobs_runner_config: {},
        jobs_poll_interval: 0,
        tasks_local_dir: dir.join('tasks'),
        tasks_python_config: { default_version: '3.12', versions: { '3.12': '/usr/bin/python3' } },
        tasks_pixi_config: {},
      }),
    );
    expect((await json('resource', 'create', '-f', file)).code).toBe(0);
    const missing = await json('queue', 'create', 'default', '--resource', 'nowhere');
    expect(missing.out.error).toMatchObject({ code: 'CP_NOT_FOUND', field: 'resource' });

    const q = await json('queue', 'create', 'default', '--resource', 'box', '--concurrency', '2');
    expect(q.code).toBe(0);
    expect(q.out).toMatchObject({
      project: 'thesis',
      created: true,
      queue: { name: 'default', resource: 'box', concurrency: 2 },
      resource: { type: 'local', id: 'box' },
    });
    expect(q.out.warning).toBeUndefined();
    // A queue on a kubernetes resource without workspace_volume is bound, and says what fails.
    const kube = dir.join('kube.json');
    writeFileSync(
      kube,
      JSON.stringify({
        type: 'kubernetes',
        name: 'K8s',
        id: 'kube',
        namespace: 'lab',
        jobs_runner_config: { image: 'debian:12' },
      }),
    );
    const kubeProfile = dir.join('kube-profile.json');
    writeFileSync(
      kubeProfile,
      JSON.stringify({
        resource_type: 'kubernetes',
        name: 'SA',
        id: 'kube-sa',
        service_account: 'runner',
      }),
    );
    expect((await json('resource', 'create', '-f', kube)).code).toBe(0);
    expect((await json('profile', 'create', '-f', kubeProfile)).code).toBe(0);
    const kq = await json('queue', 'create', 'kq', '--resource', 'kube', '--profile', 'kube-sa');
    expect(kq.code).toBe(0);
    expect(kq.out).toMatchObject({ created: true });
    expect(kq.out.warning).toMatch(
      /without workspace_volume runs only tasks that declare no files/,
    );
    const kqText = await run([
      'queue',
      'create',
      'kq',
      '--resource',
      'kube',
      '--profile',
      'kube-sa',
    ]);
    expect(kqText.stdout).toMatch(/was already bound.*a runner serves it/);
    expect(kqText.stdout).toMatch(/note: a kubernetes resource without workspace_volume/);
    expect((await json('queue', 'delete', 'kq')).code).toBe(0);
    expect((await json('profile', 'delete', 'kube-sa')).code).toBe(0);
    expect((await json('resource', 'delete', 'kube')).code).toBe(0);
    expect((await json('queue', 'list')).out).toEqual([
      { name: 'default', resource: 'box', concurrency: 2 },
    ]);
    // Replacing the resource refreshes the copy its queues keep.
    const replaced = await json('resource', 'create', '-f', file, '--replace');
    expect(replaced.out.queues).toEqual([{ project: 'thesis', queue: 'default' }]);
    const rebind = await json('queue', 'create', 'default', '--resource', 'box');
    expect(rebind.out.error.code).toBe('CP_EXISTS');

    const used = await json('resource', 'delete', 'box');
    expect(used.code).toBe(1);
    expect(used.out.error.code).toBe('CP_IN_USE');
    expect(used.out.error.message).toMatch(
      /queue default of project thesis.*cpctrl queue delete default --project thesis/,
    );
    const busy = await json('project', 'delete', 'thesis');
    expect(busy.out.error.code).toBe('CP_IN_USE');

    expect((await json('queue', 'delete', 'default')).code).toBe(0);
    expect((await json('queue', 'list')).out).toEqual([]);
    expect((await json('resource', 'delete', 'box')).code).toBe(0);
    expect((await json('project', 'delete', 'thesis')).code).toBe(0);
    expect((await json('project', 'list')).out.map((p: { name: string }) => p.name)).toEqual([
      'paper',
    ]);
    const gone = await json('project', 'show');
    expect(gone.out.error.message).toMatch(/no project thesis; `cpctrl project list`/);
  });
});
