import { writeFileSync } from 'node:fs';
import { ensureSystemUser, type Slurm, shareDirs, type TempDir } from '@computepods/testkit';
import type { Stack } from './stack.js';

/** The local account SLURM jobs run as (through sudo or over SSH). */
export const JOB_USER = 'cpuser';

/**
 * Lets the job user into a temp dir (0755), with world-writable (sticky) folders in it for what
 * the jobs write: job folders, gates, counters. Creates the job user when missing (root only).
 */
export async function openToJobUser(dir: TempDir, folders: readonly string[]): Promise<void> {
  await ensureSystemUser(JOB_USER);
  shareDirs(
    dir,
    folders.map((f) => dir.join(f)),
  );
}

/**
 * What a slurm_sudo or slurm_ssh resource needs to run on the test kit's SLURM: its partition,
 * small batches (one CPU, 50M a task), a quick poll, and the cluster's config for SLURM's clients.
 */
export function slurmCluster(slurm: Slurm) {
  return {
    jobs_runner_config: {
      default_slurm_config: { partition: slurm.partition, cpus_per_task: 1, mem: '50M' },
      batching_config: {
        target_cpus_per_job: 1,
        max_cpus_per_job: 2,
        target_mem_per_job: 100,
        max_mem_per_job: 200,
        target_num_jobs: 2,
        max_num_jobs: 4,
      },
    },
    jobs_poll_interval: 0.3,
    tasks_python_config: { default_version: '3.12', versions: { '3.12': '/usr/bin/python3' } },
    tasks_pixi_config: {},
    slurm_client_env: slurm.env,
  };
}

/** Creates a resource or a profile in the project as its admin (cpctrl), from a JSON file. */
export async function createConfig(
  stack: Stack,
  kind: 'resource' | 'profile',
  body: { id: string } & Record<string, unknown>,
): Promise<void> {
  const file = stack.dir.join(`${kind}-${body.id}.json`);
  writeFileSync(file, JSON.stringify(body));
  const res = await stack.cpctrl(['-o', 'json', kind, 'create', '-f', file]);
  if (res.code !== 0)
    throw new Error(`cpctrl ${kind} create ${body.id}: ${res.code}\n${res.stdout}${res.stderr}`);
}

/**
 * A queue bound to a resource and a profile (named as the resource: a runner started with
 * CP_RESOURCE=queue serves it). A rule naming the resource (and profile) sends its tasks there.
 */
export async function createQueue(stack: Stack, queue: string, profile: string): Promise<void> {
  const res = await stack.cpctrl([
    ...['-o', 'json', 'queue', 'create', queue],
    ...['--resource', queue, '--profile', profile],
  ]);
  if (res.code !== 0)
    throw new Error(`cpctrl queue create ${queue}: ${res.code}\n${res.stdout}${res.stderr}`);
}

/**
 * A slurm_sudo resource on the test kit's SLURM (jobs run as JOB_USER through `sudo -u`), its
 * profile `<id>-profile` and its queue `<id>`. Returns the runner's environment that serves it.
 */
export async function slurmSudoQueue(
  stack: Stack,
  slurm: Slurm,
  opts: { id: string; jobsDir: string; tasksDir: string },
): Promise<{ CP_RESOURCE: string; CP_PROFILE: string }> {
  const profile = `${opts.id}-profile`;
  await createConfig(stack, 'resource', {
    type: 'slurm_sudo',
    name: 'HPC via sudo',
    id: opts.id,
    jobs_local_dir: opts.jobsDir,
    tasks_local_dir: opts.tasksDir,
    ...slurmCluster(slurm),
  });
  await createConfig(stack, 'profile', {
    name: 'HPC sudo profile',
    id: profile,
    resource: opts.id,
    resource_type: 'slurm_sudo',
    username: JOB_USER,
  });
  await createQueue(stack, opts.id, profile);
  return { CP_RESOURCE: opts.id, CP_PROFILE: profile };
}
