import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Stack } from './stack.js';

const SLURM_JWT = 'jwt-eyJhbGciOiJIUzI1NiJ9-SECRET-0f3c';
const KEY_PATH = '/srv/keys/lab-SECRET-id_ed25519';

/** Every creds file of the stack's auth dir: the JWT and the seed each holds are secrets. */
function credsSecrets(authDir: string): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const f of readdirSync(dir)) {
      const p = join(dir, f);
      if (statSync(p).isDirectory()) walk(p);
      else if (f.endsWith('.creds'))
        out.push(
          ...(readFileSync(p, 'utf8').match(/(eyJ[A-Za-z0-9_.-]{20,}|SU[A-Z2-7]{50,})/g) ?? []),
        );
      else if (f.endsWith('.nk')) out.push(readFileSync(p, 'utf8').trim());
    }
  };
  walk(authDir);
  return out;
}

/**
 * A secret (a SLURM_JWT in a resource's slurm_client_env, a profile's SSH key path, the NATS
 * credentials and keys, the API token) never appears in an API answer, in cpctrl's output or in
 * any log line of the whole run: every service, cpctrl, and the nats-server.
 */
describe('secrets stay out of answers and logs', { timeout: 180_000 }, () => {
  let stack: Stack;
  const said: string[] = [];

  beforeAll(async () => {
    stack = await Stack.start('secrets');
    const files: Record<string, object> = {
      'r.json': {
        type: 'slurm_ssh',
        name: 'Vault cluster',
        id: 'vault',
        host: '127.0.0.1',
        jobs_local_dir: stack.dir.join('vault-jobs'),
        tasks_local_dir: stack.dir.join('vault-tasks'),
        tasks_python_config: { default_version: '3.12', versions: { '3.12': '/usr/bin/python3' } },
        tasks_pixi_config: {},
        slurm_client_env: { SLURM_JWT, SLURM_CONF: '/etc/slurm/slurm.conf' },
        jobs_runner_config: {
          default_slurm_config: { partition: 'main', cpus_per_task: 1, mem: '50M' },
          batching_config: {
            target_cpus_per_job: 1,
            max_cpus_per_job: 1,
            target_mem_per_job: 100,
            max_mem_per_job: 100,
            target_num_jobs: 1,
            max_num_jobs: 1,
          },
        },
      },
      'p.json': {
        name: 'Vault as lab',
        id: 'vault-lab',
        resource: 'vault',
        resource_type: 'slurm_ssh',
        username: 'lab',
        ssh_key_path: KEY_PATH,
        jobs_remote_dir: '/scratch/jobs',
        tasks_remote_dir: '/scratch/tasks',
      },
    };
    for (const [name, body] of Object.entries(files)) {
      writeFileSync(stack.dir.join(name), JSON.stringify(body));
      const kind = name === 'r.json' ? 'resource' : 'profile';
      const res = await stack.cpctrl(['-o', 'json', kind, 'create', '-f', stack.dir.join(name)]);
      expect(res.code, res.stderr).toBe(0);
      said.push(res.stdout, res.stderr);
    }
    const q = await stack.cpctrl([
      '-o',
      'json',
      'queue',
      'create',
      'vault',
      '--resource',
      'vault',
      '--profile',
      'vault-lab',
    ]);
    expect(q.code, q.stderr).toBe(0);
    said.push(q.stdout, q.stderr);
    await Promise.all([
      stack.start('majordomo'),
      stack.start('chef', { CP_CHEF: 'text', CP_CHEF_DEFINITION: 'generic' }),
      stack.start('runner'),
      stack.start('fswatcher'),
    ]);
    stack.write('src/s.txt', 'secret-free\n');
    await stack.until('out/s.upper');
  });

  afterAll(async () => {
    await stack?.[Symbol.asyncDispose]();
  });

  it('shows resources and profiles with their secrets redacted, over REST and in cpctrl', async () => {
    const url = await stack.httpUrl();
    const get = async (path: string) => {
      const res = await fetch(`${url}${path}`, {
        headers: { authorization: `Bearer ${stack.apiToken}` },
      });
      expect(res.status, path).toBe(200);
      return res.text();
    };
    const resources = await get('/api/resources');
    expect(JSON.parse(resources)).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          id: 'vault',
          slurm_client_env: { SLURM_JWT: '[redacted]', SLURM_CONF: '[redacted]' },
        }),
      ]),
    );
    const profiles = await get('/api/profiles');
    expect(JSON.parse(profiles)).toEqual(
      expect.arrayContaining([expect.objectContaining({ ssh_key_path: '[redacted]' })]),
    );
    said.push(resources, profiles, await get('/api/status'), await get('/api/tasks'));
    for (const args of [
      ['resource', 'list'],
      ['resource', 'show', 'vault'],
      ['profile', 'list'],
      ['profile', 'show', 'vault-lab'],
      ['queue', 'list'],
      ['project', 'show'],
      ['status'],
    ]) {
      for (const out of ['json', 'text']) {
        const res = await stack.cpctrl(['-o', out, ...args]);
        expect(res.code, `${args.join(' ')}: ${res.stderr}`).toBe(0);
        said.push(res.stdout, res.stderr);
      }
    }
    const all = said.join('\n');
    expect(all).not.toContain(SLURM_JWT);
    expect(all).not.toContain(KEY_PATH);
  });

  it('never logs a secret: no SLURM_JWT, key path, NATS credential or API token in any output of the run', async () => {
    // The runner reads the queue's resource and profile: restart it on the vault queue too, so
    // its start-up lines are in the logs checked (it cannot reach the cluster; that is fine).
    await stack
      .start('runner', { CP_QUEUE: 'vault', CP_RESOURCE: 'vault' }, 'runner-vault')
      .catch(() => undefined);
    const logs = [
      ...[...stack.procs.values()].map((p) => [p.name, p.output] as const),
      ['nats-server', stack.nats.output] as const,
      ['answers', said.join('\n')] as const,
    ];
    const secrets = [SLURM_JWT, KEY_PATH, stack.apiToken, ...credsSecrets(stack.auth.dir)];
    expect(secrets.length).toBeGreaterThan(10);
    for (const [name, text] of logs)
      for (const secret of secrets)
        expect(text.includes(secret), `${name} shows a secret (${secret.slice(0, 6)}…)`).toBe(
          false,
        );
  });
});
