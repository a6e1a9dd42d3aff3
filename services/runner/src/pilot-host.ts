import { posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type SlurmHost, SshHost, SudoHost, sshTargetOf } from '@computepods/executors';
import {
  InvalidConfigError,
  type PilotConfig,
  type Profile,
  type Resource,
  type SlurmSshResource,
  type SlurmSudoResource,
} from '@computepods/protocol';
import { commandPath, SshPool, type TransportLogger } from '@computepods/transport';

const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
/** The worker inside a checkout, relative to its root. */
export const WORKER_PATH = 'services/runner/src/pilot-worker.ts';

/** A SLURM resource in pilot mode: its pilot_config is there (see isPilotResource). */
export type PilotResource = (SlurmSudoResource | SlurmSshResource) & {
  readonly pilot_config: PilotConfig;
};

/** Pilot mode: a slurm_sudo or slurm_ssh resource with a pilot_config. */
export function isPilotResource(resource: Resource): resource is PilotResource {
  return (
    (resource.type === 'slurm_sudo' || resource.type === 'slurm_ssh') && !!resource.pilot_config
  );
}

/** Where pilot jobs go and what they run, as the cluster sees it. */
export interface PilotSite {
  readonly host: SlurmHost;
  /** Parent of the pilots' job folders, on the cluster. */
  readonly jobsDir: string;
  /** tasks_local_dir of the workers' local resource, on the cluster. */
  readonly tasksDir: string;
  /** The ComputePods checkout the workers run from, on the cluster. */
  readonly repoDir: string;
  /** The node binary on the cluster (a path, or a name looked up on the job's PATH). */
  readonly node: string;
  /** Whether this site made the host (and closes it). */
  readonly ownsHost: boolean;
}

/**
 * The pilots' site for a resource. slurm_sudo shares this machine's filesystem, so workers run
 * this very checkout with this node. slurm_ssh reaches the cluster through a pooled SSH
 * connection; its workers run the checkout named by pilot_config.computepods_dir, so the code
 * is installed there once (git clone + pnpm install), like any tool on a cluster, rather than
 * shipped with every job.
 */
export function pilotSite(
  resource: PilotResource,
  profile: Profile | undefined,
  host?: SlurmHost,
  logger?: TransportLogger,
): PilotSite {
  const pc = resource.pilot_config;
  if (resource.type === 'slurm_sudo') {
    if (!host && profile?.resource_type !== 'slurm_sudo')
      throw new InvalidConfigError(`runner for resource "${resource.name}"`, [
        'profile: pilot mode on a slurm_sudo resource needs a slurm_sudo profile',
      ]);
    return {
      host:
        host ??
        new SudoHost({
          username: (profile as { username: string }).username,
          clientEnv: resource.slurm_client_env ?? {},
        }),
      jobsDir: resource.jobs_local_dir,
      tasksDir: resource.tasks_local_dir,
      repoDir: pc.computepods_dir ?? REPO_ROOT,
      node: pc.node_path ?? process.execPath,
      ownsHost: !host,
    };
  }
  if (profile?.resource_type !== 'slurm_ssh')
    throw new InvalidConfigError(`runner for resource "${resource.name}"`, [
      'profile: pilot mode on a slurm_ssh resource needs a slurm_ssh profile',
    ]);
  return {
    host:
      host ??
      new SshHost({
        pool: new SshPool(logger ? { logger } : {}),
        target: sshTargetOf(resource, profile),
        clientEnv: resource.slurm_client_env ?? {},
        localJobsDir: resource.jobs_local_dir,
        ownsPool: true,
      }),
    jobsDir: profile.jobs_remote_dir,
    tasksDir: profile.tasks_remote_dir,
    repoDir: resource.pilot_config.computepods_dir,
    node: pc.node_path ?? 'node',
    ownsHost: !host,
  };
}

// Exit codes of the check below, one per missing piece.
const CHECK = `
cd "$1" 2>/dev/null || exit 11
[ -f "$2" ] || exit 12
[ -f node_modules/tsx/package.json ] || exit 13
command -v "$3" >/dev/null 2>&1 || exit 14
command -v python3 >/dev/null 2>&1 || exit 15
exec "$3" --version
`;

/**
 * Checks, as the profile's user on the cluster, that the workers' checkout and node are there.
 * Resolves with node's version; a missing piece is an InvalidConfigError naming the field and
 * the fix. Transport failures (host down) are thrown as they are: they may pass.
 */
export async function checkPilotSite(site: PilotSite, resourceName: string): Promise<string> {
  const res = await site.host.run([
    'sh',
    '-c',
    CHECK,
    'sh',
    commandPath(site.repoDir, 'pilot_config.computepods_dir'),
    WORKER_PATH,
    commandPath(site.node, 'pilot_config.node_path'),
  ]);
  const on = `on ${site.host.label}`;
  const worker = posix.join(site.repoDir, WORKER_PATH);
  const problem =
    res.code === 0
      ? undefined
      : res.code === 11
        ? `pilot_config.computepods_dir: ${site.repoDir} does not exist or cannot be entered ${on}; clone ComputePods there and run pnpm install`
        : res.code === 12
          ? `pilot_config.computepods_dir: ${site.repoDir} ${on} is not a ComputePods checkout (${worker} is missing)`
          : res.code === 13
            ? `pilot_config.computepods_dir: ${site.repoDir} ${on} has no node_modules/tsx; run pnpm install there`
            : res.code === 14
              ? `pilot_config.node_path: ${site.node} is not an executable ${on}; install Node.js >= 20 or set node_path`
              : res.code === 15
                ? `pilot_config: python3 is not on the PATH ${on}; the workers' task spawner needs it (Debian: python3-minimal)`
                : `pilot_config: checking ${site.repoDir} ${on} failed (exit ${res.code}): ${res.stderr.trim()}`;
  if (problem) throw new InvalidConfigError(`pilot mode for resource "${resourceName}"`, [problem]);
  return res.stdout.trim();
}
