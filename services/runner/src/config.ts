import { cpus, hostname } from 'node:os';
import { isAbsolute, resolve } from 'node:path';
import { checkName, checkProject, envInt } from '@computepods/protocol';

export interface RunnerConfig {
  readonly project: string;
  /** The resource id (with a queue record: the queue's resource, whatever CP_RESOURCE says). */
  readonly resource: string;
  /**
   * The project's queue this runner serves (CP_QUEUE, default CP_RESOURCE): it takes tasks from
   * cp.<project>.tasks.<queue>, and its resource and profile from the queue's record.
   */
  readonly queue: string;
  /**
   * Written into every record; a restarted runner adopts the unfinished records that carry
   * its id, so it must stay the same across restarts (default: host name + resource).
   */
  readonly runnerId: string;
  readonly stateDir: string;
  /** Local resource without a configuration: tasks at once. */
  readonly parallel: number;
  /** The resource's JSON (Fractal shape); default: KV bucket cp_resources, key = resource id. */
  readonly resourceFile?: string | undefined;
  /** The profile id (KV bucket cp_profiles) for slurm_sudo / slurm_ssh resources. */
  readonly profile?: string | undefined;
  readonly profileFile?: string | undefined;
  /** Task submissions handled at once (each only records the task; running is separate). */
  readonly intake: number;
  /**
   * How long a pulled task message may go unacknowledged before JetStream delivers it again
   * (CP_RUNNER_ACK_WAIT_MS, default 30 s). A runner acknowledges a task once it is recorded and
   * tells JetStream it is still working meanwhile; a runner that starts hands out again at once
   * what a killed one had pulled (reclaim.ts), so this only bounds a runner that dies and is
   * never replaced.
   */
  readonly ackWaitMs?: number | undefined;
  /**
   * The only folders (and what is below them) a task's cwd may be in, checked with symlinks
   * resolved: CP_WORKSPACE_ROOTS (colon-separated absolute paths), else CP_WORKSPACE. Empty:
   * every task is refused, since a runner that would run anywhere is never the default.
   */
  readonly workspaceRoots: readonly string[];
  /**
   * Pilot workers only: the profile id of the runner that started them, checked against each
   * task's `profile` (the worker itself runs a local resource without a profile).
   */
  readonly pilotProfile?: string | undefined;
  /** The runner's NATS credentials and the server's CA (NATS_CREDS, NATS_CA): its pilots get copies. */
  readonly natsCreds?: string | undefined;
  readonly natsCa?: string | undefined;
  /**
   * SLURM job folders: removed CP_JOB_KEEP_S after their job ended with every task exiting 0
   * (default 600: outputs collected, logs published by then; 0 removes them at the next sweep),
   * CP_JOB_KEEP_FAILED_S after one that did not (default 604800, 7 days).
   */
  readonly jobKeep?: { readonly okMs: number; readonly failedMs: number } | undefined;
}

const CONTROL_CHARS = /[\u0000-\u001f\u007f]/;

/**
 * CP_WORKSPACE_ROOTS as absolute paths; else CP_WORKSPACE (made absolute, as the chef does);
 * else none. A relative or odd entry in CP_WORKSPACE_ROOTS stops the runner with the fix.
 */
export function workspaceRootsOf(env: NodeJS.ProcessEnv): string[] {
  const list = env.CP_WORKSPACE_ROOTS?.trim();
  if (!list) return env.CP_WORKSPACE ? [resolve(env.CP_WORKSPACE)] : [];
  return list.split(':').map((root) => {
    if (!isAbsolute(root) || CONTROL_CHARS.test(root))
      throw new Error(
        `CP_WORKSPACE_ROOTS must be absolute paths separated by ":", got ${JSON.stringify(root)} in ${JSON.stringify(list)}; write it as /path/one:/path/two`,
      );
    return resolve(root);
  });
}

/** Every setting comes from the environment (flags are for the CLI). */
export function runnerConfig(env: NodeJS.ProcessEnv = process.env): RunnerConfig {
  const int = (name: string, fallback: number) => envInt(env, name, fallback);
  const seconds = (name: string, fallback: number) =>
    envInt(env, name, fallback, { min: 0, max: 10 * 365 * 24 * 3600, unit: 'seconds' });
  const resource = checkName('resource name (CP_RESOURCE)', env.CP_RESOURCE ?? 'local');
  const queue = checkName('queue name (CP_QUEUE)', env.CP_QUEUE || resource);
  return {
    project: checkProject(env.CP_PROJECT ?? 'demo'),
    resource,
    queue,
    runnerId: env.CP_RUNNER_ID ?? `${hostname()}-${queue}`,
    stateDir: resolve(env.CP_STATE_DIR ?? '.state', 'runner'),
    parallel: int('CP_PARALLEL', cpus().length),
    resourceFile: env.CP_RESOURCE_FILE,
    profile: env.CP_PROFILE,
    profileFile: env.CP_PROFILE_FILE,
    intake: int('CP_RUNNER_INTAKE', 256),
    ackWaitMs: int('CP_RUNNER_ACK_WAIT_MS', 30_000),
    workspaceRoots: workspaceRootsOf(env),
    pilotProfile: env.CP_PILOT_PROFILE || undefined,
    natsCreds: env.NATS_CREDS || undefined,
    natsCa: env.NATS_CA || undefined,
    jobKeep: {
      okMs: seconds('CP_JOB_KEEP_S', 600) * 1000,
      failedMs: seconds('CP_JOB_KEEP_FAILED_S', 7 * 24 * 3600) * 1000,
    },
  };
}
