import { cpus, hostname } from 'node:os';
import { resolve } from 'node:path';
import { checkName, checkProject } from '@computepods/protocol';

export interface RunnerConfig {
  readonly project: string;
  /** The resource id: the runner takes tasks from cp.<project>.tasks.<resource>. */
  readonly resource: string;
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
}

/** Every setting comes from the environment (flags are for the CLI). */
export function runnerConfig(env: NodeJS.ProcessEnv = process.env): RunnerConfig {
  const int = (name: string, fallback: number) => {
    const raw = env[name];
    const n = raw === undefined ? fallback : Number(raw);
    if (!Number.isInteger(n) || n < 1)
      throw new Error(`${name} must be a positive integer, got ${JSON.stringify(raw)}`);
    return n;
  };
  const resource = checkName('resource name (CP_RESOURCE)', env.CP_RESOURCE ?? 'local');
  return {
    project: checkProject(env.CP_PROJECT ?? 'demo'),
    resource,
    runnerId: env.CP_RUNNER_ID ?? `${hostname()}-${resource}`,
    stateDir: resolve(env.CP_STATE_DIR ?? '.state', 'runner'),
    parallel: int('CP_PARALLEL', cpus().length),
    resourceFile: env.CP_RESOURCE_FILE,
    profile: env.CP_PROFILE,
    profileFile: env.CP_PROFILE_FILE,
    intake: int('CP_RUNNER_INTAKE', 256),
  };
}
