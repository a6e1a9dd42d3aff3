import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { NatsServer, TempDir } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/** cpctrl as its users run it: its bundle while fresh, else its sources (bin/cpctrl.js). */
const main = fileURLToPath(new URL('../bin/cpctrl.js', import.meta.url));
const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));

describe('cpctrl resource and profile, over a real nats-server', { timeout: 240_000 }, () => {
  let nats: NatsServer;
  const dir = new TempDir('cp-cpctrl-');
  beforeAll(async () => {
    nats = await NatsServer.start();
  });
  afterAll(async () => {
    await nats?.[Symbol.asyncDispose]();
    dir[Symbol.dispose]();
  });

  const cpctrl = (...args: string[]) => {
    const r = spawnSync(process.execPath, [main, '-o', 'json', ...args], {
      env: {
        ...process.env,
        NATS_URL: nats.url,
        CP_PROJECT: 'demo',
        CPCTRL_CONFIG: dir.join('cpctrl.json'),
      },
      encoding: 'utf8',
    });
    return { code: r.status, out: r.stdout ? JSON.parse(r.stdout) : undefined, stderr: r.stderr };
  };

  it('stores the seed example resource and profile as written, and protects a used resource', () => {
    const created = cpctrl('resource', 'create', '-f', fixture('slurm_sudo.json'));
    expect(created.code).toBe(0);
    expect(created.out.id).toBe('slurm-cluster');
    expect(cpctrl('resource', 'create', '-f', fixture('slurm_sudo.json')).out.error.code).toBe(
      'CP_EXISTS',
    );

    // the profile names no resource: it binds to the only slurm_sudo resource
    const prof = cpctrl('profile', 'create', '-f', fixture('slurm_sudo_profile.json'));
    expect(prof.code).toBe(0);
    expect(prof.out.profile).toMatchObject({
      resource: 'slurm-cluster',
      username: 'slurm-username',
    });
    expect(cpctrl('profile', 'list').out).toEqual([
      expect.objectContaining({ id: 'slurm-sudo-profile', resource: 'slurm-cluster' }),
    ]);

    const refused = cpctrl('resource', 'delete', 'slurm-cluster');
    expect(refused.code).toBe(1);
    expect(refused.out.error).toMatchObject({ code: 'CP_IN_USE' });
    expect(refused.out.error.message).toMatch(/slurm-sudo-profile/);

    expect(cpctrl('profile', 'delete', 'slurm-sudo-profile').code).toBe(0);
    expect(cpctrl('resource', 'delete', 'slurm-cluster').code).toBe(0);
    expect(cpctrl('resource', 'list').out).toEqual([]);
  });

  it('stores a kubernetes resource without workspace_volume, saying plainly that chef tasks would fail on it', () => {
    const file = dir.join('k8s.json');
    writeFileSync(
      file,
      JSON.stringify({
        type: 'kubernetes',
        name: 'K8s',
        id: 'k8s',
        namespace: 'lab',
        jobs_runner_config: { image: 'debian:12' },
      }),
    );
    const created = cpctrl('resource', 'create', '-f', file);
    expect(created.code, created.stderr).toBe(0);
    expect(created.out).toMatchObject({ id: 'k8s' });
    expect(created.out.warning).toMatch(
      /kubernetes resource without workspace_volume runs only tasks that declare no files/,
    );
    const local = cpctrl('resource', 'create', '-f', fixture('slurm_sudo.json'));
    expect(local.code).toBe(0);
    expect(local.out.warning).toBeUndefined();
    expect(cpctrl('resource', 'delete', 'slurm-cluster').code).toBe(0);
    expect(cpctrl('resource', 'delete', 'k8s').code).toBe(0);
  });

  it('names the wrong field, and refuses a profile for a resource of another type', () => {
    const bad = dir.join('bad.json');
    writeFileSync(
      bad,
      JSON.stringify({
        type: 'local',
        name: 'L',
        jobs_local_dir: '/x',
        jobs_runner_config: { parallel_tasks_per_job: 'two' },
        jobs_poll_interval: 0,
        tasks_local_dir: '/y',
        tasks_python_config: { default_version: '3.12', versions: { '3.12': '/p' } },
        tasks_pixi_config: {},
        tasks_pip_cache_dir: null,
      }),
    );
    const r = cpctrl('resource', 'create', '-f', bad);
    expect(r.code).toBe(1);
    expect(r.out.error.message).toMatch(/jobs_runner_config\.parallel_tasks_per_job/);

    expect(cpctrl('resource', 'create', '-f', fixture('slurm_sudo.json')).code).toBe(0);
    const local = dir.join('local-profile.json');
    writeFileSync(local, JSON.stringify({ name: 'Local profile', resource_type: 'local' }));
    const wrong = cpctrl('profile', 'create', '-f', local, '--resource', 'slurm-cluster');
    expect(wrong.code).toBe(1);
    expect(wrong.out.error.message).toMatch(/resource_type/);
  });
});
