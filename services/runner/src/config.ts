import { cpus, hostname } from 'node:os';
import { resolve } from 'node:path';
import { checkName, checkProject } from '@computepods/protocol';

export interface RunnerConfig {
  readonly project: string;
  readonly resource: string;
  readonly runnerId: string;
  readonly stateDir: string;
  readonly parallel: number;
}

/** Every setting comes from the environment (flags are for the CLI). */
export function runnerConfig(env: NodeJS.ProcessEnv = process.env): RunnerConfig {
  const parallel = Number(env.CP_PARALLEL ?? cpus().length);
  if (!Number.isInteger(parallel) || parallel < 1) {
    throw new Error(
      `CP_PARALLEL must be a positive integer, got ${JSON.stringify(env.CP_PARALLEL)}`,
    );
  }
  return {
    project: checkProject(env.CP_PROJECT ?? 'demo'),
    resource: checkName('resource name (CP_RESOURCE)', env.CP_RESOURCE ?? 'local'),
    runnerId: env.CP_RUNNER_ID ?? `${hostname()}-${process.pid}`,
    stateDir: resolve(env.CP_STATE_DIR ?? '.state', 'runner'),
    parallel,
  };
}
