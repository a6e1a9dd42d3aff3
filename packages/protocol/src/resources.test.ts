import { describe, expect, it } from 'vitest';
import {
  checkProfileFor,
  InvalidConfigError,
  InvalidNameError,
  Profile,
  parseProfile,
  parseResource,
  profileId,
  Resource,
  resourceId,
  slugify,
  slurmMemToMb,
} from './index.js';

// The resource and profile examples of seeds/fractal-computational-integrations.txt, copied
// verbatim (do not reformat): the schemas must accept them exactly as written.
const LOCAL_RESOURCE = `{
"type": "local",
"name": "Local resource",
"jobs_local_dir": "/somewhere/jobs",
"jobs_runner_config": {
"parallel_tasks_per_job": 1
},
"jobs_poll_interval": 0,
"tasks_local_dir": "/somewhere/tasks",
"tasks_python_config": {
"default_version": "3.12",
"versions": {
"3.12": "/some-venv/bin/python"
}
},
"tasks_pixi_config": {},
"tasks_pip_cache_dir": null
}`;

const SLURM_SUDO_RESOURCE = `{
"type": "slurm_sudo",
"name": "SLURM cluster",
"jobs_local_dir": "/somewhere/local-jobs",
"jobs_runner_config": {
"default_slurm_config": {
"partition": "partition-name",
"cpus_per_task": 1,
"mem": "100M"
},
"gpu_slurm_config": {
"partition": "gpu",
"extra_lines": [
"#SBATCH --gres=gpu:v100:1"
]
},
"user_local_exports": {
"CELLPOSE_LOCAL_MODELS_PATH": "CELLPOSE_LOCAL_MODELS_PATH",
"NAPARI_CONFIG": "napari_config.json"
},
"batching_config": {
"target_cpus_per_job": 1,
"max_cpus_per_job": 1,
"target_mem_per_job": 200,
"max_mem_per_job": 500,
"target_num_jobs": 2,
"max_num_jobs": 4
}
},
"jobs_slurm_python_worker": "/some/venv/bin/python3.12",
"jobs_poll_interval": 10,
"tasks_local_dir": "/somewhere/local-tasks",
"tasks_python_config": {
"default_version": "3.12",
"versions": {
"3.11": "/some/venv/bin/python3.11",
"3.12": "/some/venv/bin/python3.12"
}
},
"tasks_pixi_config": {},
"tasks_pip_cache_dir": null
}`;

const SLURM_SSH_RESOURCE = `{
"type": "slurm_ssh",
"name": "Remote SLURM cluster",
"host": "slurm-cluster.example.org",
"jobs_local_dir": "/somewhere/local-jobs",
"jobs_runner_config": {
"default_slurm_config": {
"partition": "partition-name",
"cpus_per_task": 1,
"mem": "100M"
},
"gpu_slurm_config": {
"partition": "gpu",
"extra_lines": [
"#SBATCH --gres=gpu:v100:1"
]
},
"user_local_exports": {
"CELLPOSE_LOCAL_MODELS_PATH": "CELLPOSE_LOCAL_MODELS_PATH",
"NAPARI_CONFIG": "napari_config.json"
},
"batching_config": {
"target_cpus_per_job": 1,
"max_cpus_per_job": 1,
"target_mem_per_job": 200,
"max_mem_per_job": 500,
"target_num_jobs": 2,
"max_num_jobs": 4
}
},
"jobs_slurm_python_worker": "/some/venv/bin/python3.12",
"jobs_poll_interval": 10,
"tasks_local_dir": "/somewhere/local-tasks",
"tasks_python_config": {
"default_version": "3.12",
"versions": {
"3.11": "/some/venv/bin/python3.11",
"3.12": "/some/venv/bin/python3.12"
}
},
"tasks_pixi_config": {},
"tasks_pip_cache_dir": null
}`;

const LOCAL_PROFILE = `{
"name": "Local profile",
"resource_type": "local"
}`;

const SLURM_SUDO_PROFILE = `{
"name": "SLURM/sudo profile",
"resource_type": "slurm_sudo",
"username": "slurm-username"
}`;

const SLURM_SSH_PROFILE = `{
"name": "SLURM/SSH profile",
"resource_type": "slurm_ssh",
"username": "slurm-username",
"ssh_key_path": "/somewhere/private.key",
"jobs_remote_dir": "/somewhere/jobs",
"tasks_remote_dir": "/somewhere/tasks"
}`;

const parsed = (text: string) => JSON.parse(text) as Record<string, unknown>;

function issuesOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidConfigError);
    const e = err as InvalidConfigError;
    expect(e.code).toBe('CP_INVALID_CONFIG');
    expect(e.retryable).toBe(false);
    expect(e.message).toContain('fix the field');
    return [...e.issues];
  }
  throw new Error('expected an InvalidConfigError');
}

describe('Fractal examples', () => {
  it.each([
    ['local', LOCAL_RESOURCE],
    ['slurm_sudo', SLURM_SUDO_RESOURCE],
    ['slurm_ssh', SLURM_SSH_RESOURCE],
  ])('accepts the %s resource example exactly as written', (type, text) => {
    const resource = parseResource(JSON.parse(text));
    expect(resource.type).toBe(type);
    // Nothing the example says is dropped or changed by parsing.
    expect(resource).toMatchObject(parsed(text));
  });

  it.each([
    ['local', LOCAL_PROFILE],
    ['slurm_sudo', SLURM_SUDO_PROFILE],
    ['slurm_ssh', SLURM_SSH_PROFILE],
  ])('accepts the %s profile example exactly as written', (type, text) => {
    const profile = parseProfile(JSON.parse(text));
    expect(profile.resource_type).toBe(type);
    expect(profile).toEqual(parsed(text));
  });

  it('derives subject-safe ids from the display names', () => {
    expect(resourceId(parseResource(parsed(LOCAL_RESOURCE)))).toBe('local-resource');
    expect(resourceId(parseResource(parsed(SLURM_SUDO_RESOURCE)))).toBe('slurm-cluster');
    expect(resourceId(parseResource(parsed(SLURM_SSH_RESOURCE)))).toBe('remote-slurm-cluster');
    expect(profileId(parseProfile(parsed(SLURM_SUDO_PROFILE)))).toBe('slurm-sudo-profile');
    expect(profileId(parseProfile(parsed(SLURM_SSH_PROFILE)))).toBe('slurm-ssh-profile');
  });

  it('prefers an explicit id, and refuses one that is not subject-safe', () => {
    const r = { ...parsed(LOCAL_RESOURCE), id: 'laptop' };
    expect(resourceId(parseResource(r))).toBe('laptop');
    const issues = issuesOf(() => parseResource({ ...r, id: 'My Laptop' }));
    expect(issues[0]).toMatch(/^id: use 1-63 characters/);
  });

  it('fills Fractal defaults that the examples leave out', () => {
    const r = parsed(SLURM_SUDO_RESOURCE);
    delete r.jobs_poll_interval;
    expect(parseResource(r).jobs_poll_interval).toBe(5);
  });
});

describe('errors name the field', () => {
  it('names a field of the wrong type by its full path', () => {
    const r = parsed(SLURM_SUDO_RESOURCE);
    const cfg = r.jobs_runner_config as { batching_config: Record<string, unknown> };
    cfg.batching_config.max_num_jobs = 'four';
    const issues = issuesOf(() => parseResource(r));
    expect(issues).toEqual([
      'jobs_runner_config.batching_config.max_num_jobs: expected number, received string',
    ]);
  });

  it('refuses an unknown (misspelt) field, names it and suggests the right one', () => {
    const r = parsed(SLURM_SSH_RESOURCE);
    const cfg = r.jobs_runner_config as { default_slurm_config: Record<string, unknown> };
    cfg.default_slurm_config.cpus_per_tsak = 2;
    r.jobs_pol_interval = 3;
    const issues = issuesOf(() => parseResource(r));
    expect(issues).toContain(
      'jobs_runner_config.default_slurm_config.cpus_per_tsak: unknown field (did you mean "cpus_per_task"?)',
    );
    expect(issues).toContain(
      'jobs_pol_interval: unknown field (did you mean "jobs_poll_interval"?)',
    );
  });

  it('names an unknown field without a suggestion when nothing is close', () => {
    const issues = issuesOf(() => parseProfile({ ...parsed(LOCAL_PROFILE), colour: 'red' }));
    expect(issues).toEqual(['colour: unknown field']);
  });

  it('lists the accepted types for an unknown type', () => {
    const issues = issuesOf(() => parseResource({ ...parsed(LOCAL_RESOURCE), type: 'slurm' }));
    expect(issues).toEqual([
      'type: expected one of "local", "slurm_sudo", "slurm_ssh", "kubernetes"',
    ]);
  });

  it('names missing required fields', () => {
    const r = parsed(SLURM_SSH_RESOURCE);
    delete r.host;
    const p = parsed(SLURM_SSH_PROFILE);
    delete p.ssh_key_path;
    expect(issuesOf(() => parseResource(r))).toEqual(['host: expected string, received undefined']);
    expect(issuesOf(() => parseProfile(p))).toEqual([
      'ssh_key_path: expected string, received undefined',
    ]);
  });

  it('refuses relative directories, bad memory sizes and an unknown default python', () => {
    const r = parsed(SLURM_SUDO_RESOURCE);
    r.jobs_local_dir = 'jobs';
    const cfg = r.jobs_runner_config as { default_slurm_config: Record<string, unknown> };
    cfg.default_slurm_config.mem = '100MB';
    (r.tasks_python_config as Record<string, unknown>).default_version = '3.10';
    const issues = issuesOf(() => parseResource(r));
    expect(issues).toContain('jobs_local_dir: must be an absolute path (starting with "/")');
    expect(issues.some((i) => i.startsWith('jobs_runner_config.default_slurm_config.mem:'))).toBe(
      true,
    );
    expect(issues).toContain(
      'tasks_python_config.default_version: "3.10" is not one of versions (3.11, 3.12)',
    );
  });

  it('refuses values that could start a new line in a job script', () => {
    const r = parsed(SLURM_SUDO_RESOURCE);
    const cfg = r.jobs_runner_config as {
      default_slurm_config: Record<string, unknown>;
      gpu_slurm_config: { extra_lines: string[] };
    };
    cfg.default_slurm_config.partition = 'debug\ntouch /tmp/pwned';
    cfg.gpu_slurm_config.extra_lines = ['#SBATCH --gres=gpu:1\nrm -rf ~'];
    const issues = issuesOf(() => parseResource(r));
    expect(issues).toContain(
      'jobs_runner_config.default_slurm_config.partition: must not contain newlines or other control characters',
    );
    expect(issues).toContain(
      'jobs_runner_config.gpu_slurm_config.extra_lines.0: must not contain newlines or other control characters',
    );
  });

  it('accepts only #SBATCH directives in extra_lines, naming the field and what is accepted', () => {
    const withLines = (lines: string[]) => {
      const r = parsed(SLURM_SUDO_RESOURCE);
      const cfg = r.jobs_runner_config as { default_slurm_config: Record<string, unknown> };
      cfg.default_slurm_config.extra_lines = lines;
      return r;
    };
    const fine = [
      '#SBATCH --gres=gpu:v100:1',
      '#SBATCH -N 1',
      '#SBATCH --constraint=haswell&ib|skylake',
      '#SBATCH --nodelist=node[01-04],gpu7',
      '#SBATCH --time=1-00:00:00',
      '#SBATCH --mail-user=ops@example.org',
      '#SBATCH --exclusive',
      '#SBATCH   --qos=low',
    ];
    expect(() => parseResource(withLines(fine))).not.toThrow();
    const hostile = [
      'rm -rf ~',
      '#SBATCH --comment=x; touch /tmp/pwned',
      '#SBATCH --comment=`id`',
      '#SBATCH --comment=$(id)',
      '#SBATCH --comment=$HOME',
      "#SBATCH --comment='x'",
      '#SBATCH --output=/tmp/x > /tmp/y',
      '#SBATCH',
      '#SBATCH x',
      ' #SBATCH --qos=low',
      '#!/bin/sh',
      '',
    ];
    const issues = issuesOf(() => parseResource(withLines(hostile)));
    expect(issues).toHaveLength(hostile.length);
    for (const [i, issue] of issues.entries())
      expect(issue).toMatch(
        new RegExp(
          `^jobs_runner_config\\.default_slurm_config\\.extra_lines\\.${i}: must be one sbatch directive such as "#SBATCH --gres=gpu:1"`,
        ),
      );
    expect(issues[1]).toMatch(/no ; \$ `/);
  });

  it.each(['-oProxyCommand=x', 'Root', 'a b', '$(id)', 'x;y', '', 'a'.repeat(33), '9lives'])(
    'refuses the user name %j',
    (username) => {
      const issues = issuesOf(() => parseProfile({ ...parsed(SLURM_SUDO_PROFILE), username }));
      expect(issues[0]).toMatch(/^username: must be a POSIX user name/);
    },
  );

  it('refuses user_local_exports names that are not environment variables', () => {
    const r = parsed(SLURM_SUDO_RESOURCE);
    (r.jobs_runner_config as Record<string, unknown>).user_local_exports = { 'A;B': 'x' };
    const issues = issuesOf(() => parseResource(r));
    expect(issues[0]).toMatch(/^jobs_runner_config\.user_local_exports\.A;B: /);
  });
});

describe('profiles and resources together', () => {
  it('checks that a profile is for the resource it is used with', () => {
    const sudo = parseResource(parsed(SLURM_SUDO_RESOURCE));
    expect(() => checkProfileFor(sudo, parseProfile(parsed(SLURM_SUDO_PROFILE)))).not.toThrow();
    expect(() => checkProfileFor(sudo, parseProfile(parsed(SLURM_SSH_PROFILE)))).toThrow(
      /resource_type: "slurm_ssh" does not match resource type "slurm_sudo"/,
    );
    const bound = parseProfile({ ...parsed(SLURM_SUDO_PROFILE), resource: 'other' });
    expect(() => checkProfileFor(sudo, bound)).toThrow(/resource: "other" is not this resource/);
  });

  it('accepts a kubernetes resource and profile (no backend yet)', () => {
    const r = Resource.parse({
      type: 'kubernetes',
      name: 'Cloud',
      namespace: 'builds',
      jobs_runner_config: {
        image: 'debian:12',
        default_pod_config: { cpu: '500m', memory: '1Gi' },
      },
    });
    expect(resourceId(r)).toBe('cloud');
    const p = Profile.parse({ name: 'CI', resource_type: 'kubernetes', service_account: 'runner' });
    expect(p.resource_type).toBe('kubernetes');
    expect(() => parseResource({ ...r, namespace: 'Not_A_Label' })).toThrow(/namespace: must be/);
  });

  it('accepts the ComputePods extensions', () => {
    const r = parseResource({
      ...parsed(SLURM_SSH_RESOURCE),
      id: 'hpc',
      port: 2222,
      slurm_client_env: { SLURM_CONF: '/tmp/slurm.conf' },
    });
    expect(r.type === 'slurm_ssh' && r.port).toBe(2222);
    expect(() => parseResource({ ...r, port: 0 })).toThrow(/port: /);
  });

  it('accepts an optional, strict pilot_config on slurm_sudo resources', () => {
    const pilot = { max_workers: 2, idle_timeout_s: 30, cpus_per_worker: 4 };
    const r = parseResource({ ...parsed(SLURM_SUDO_RESOURCE), pilot_config: pilot });
    expect(r.type === 'slurm_sudo' && r.pilot_config).toEqual(pilot);
    const sudo = parsed(SLURM_SUDO_RESOURCE);
    expect(
      issuesOf(() => parseResource({ ...sudo, pilot_config: { ...pilot, max_worker: 1 } })),
    ).toContain('pilot_config.max_worker: unknown field (did you mean "max_workers"?)');
    expect(() =>
      parseResource({ ...sudo, pilot_config: { max_workers: 0, idle_timeout_s: 30 } }),
    ).toThrow(/pilot_config.max_workers: /);
    // over SSH the workers' checkout on the cluster must be named
    const ssh = parsed(SLURM_SSH_RESOURCE);
    expect(() => parseResource({ ...ssh, pilot_config: pilot })).toThrow(
      /pilot_config.computepods_dir: /,
    );
    const remote = { ...pilot, computepods_dir: '/opt/computepods', nats_url: 'nats://hub:4222' };
    const rs = parseResource({ ...ssh, pilot_config: remote });
    expect(rs.type === 'slurm_ssh' && rs.pilot_config).toEqual(remote);
    expect(() =>
      parseResource({ ...ssh, pilot_config: { ...remote, nats_url: 'hub:4222; rm -rf /' } }),
    ).toThrow(/pilot_config.nats_url: must be NATS URLs/);
  });
});

describe('slugify and memory', () => {
  it.each([
    ['Local resource', 'local-resource'],
    ['  SLURM/sudo profile  ', 'slurm-sudo-profile'],
    ['Ünïcödé cluster #2', 'unicode-cluster-2'],
    ['a'.repeat(70), 'a'.repeat(63)],
  ])('slugify(%j) = %j', (name, slug) => {
    expect(slugify(name)).toBe(slug);
  });

  it('refuses a name with nothing to keep', () => {
    expect(() => slugify('!!!')).toThrow(InvalidNameError);
  });

  it.each([
    [100, 100],
    ['100', 100],
    ['100M', 100],
    ['3G', 3000],
    ['1T', 1_000_000],
  ] as const)('slurmMemToMb(%j) = %d', (mem, mb) => {
    expect(slurmMemToMb(mem)).toBe(mb);
  });
});
