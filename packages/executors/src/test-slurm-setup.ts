import { type BatchingConfig, resourceId, type SlurmSudoResource } from '@computepods/protocol';
import { defined, type Slurm } from '@computepods/testkit';
import type { BackendContext } from './backend.js';
import { Executor } from './executor.js';
import { SlurmBackend, type SlurmBackendOptions } from './slurm-backend.js';
import type { SlurmHost } from './slurm-host.js';
import { SudoHost } from './sudo-host.js';
import { RecordingHooks } from './test-hooks.js';

/**
 * The fields (parseResource's input) every SLURM resource of these tests has, on the test's
 * own single-node `slurm`: jobs in its one partition with 1 CPU and 50M unless a task asks for
 * more, batched as `batching` says, polled every 0.3 s, tasks run with the system's python3.
 * The caller adds type, name and what its own resource has.
 */
export function slurmResourceFields(
  slurm: Slurm,
  o: {
    jobsDir: string;
    tasksDir: string;
    batching: BatchingConfig;
    /** slurm_client_env: how the runner's SLURM commands find the controller (slurm.env). */
    clientEnv?: Record<string, string>;
    /** More of jobs_runner_config (user_local_exports...). */
    runnerConfig?: Record<string, unknown>;
  },
) {
  return {
    jobs_local_dir: o.jobsDir,
    jobs_runner_config: {
      default_slurm_config: { partition: slurm.partition, cpus_per_task: 1, mem: '50M' },
      ...o.runnerConfig,
      batching_config: o.batching,
    },
    jobs_poll_interval: 0.3,
    tasks_local_dir: o.tasksDir,
    tasks_python_config: { default_version: '3.12', versions: { '3.12': '/usr/bin/python3' } },
    tasks_pixi_config: {},
    slurm_client_env: o.clientEnv ?? slurm.env,
  };
}

/**
 * An executor (RecordingHooks) on the slurm_sudo `resource`, whose SLURM commands and job
 * files go through `sudo -n -u <user>` from `cwd` (SudoHost; `wrap` may put a test's host
 * around it, one that fails as a busy controller does), gathering tasks into batches for
 * 100 ms; `options` add to SlurmBackend's (retry, keep...).
 */
export function sudoSlurmExecutor(
  resource: SlurmSudoResource,
  o: {
    user: string;
    cwd: string;
    wrap?: ((inner: SlurmHost) => SlurmHost) | undefined;
    options?: Partial<SlurmBackendOptions>;
  },
) {
  const inner = new SudoHost({
    username: o.user,
    clientEnv: defined(resource.slurm_client_env, 'resource.slurm_client_env'),
    cwd: o.cwd,
  });
  const host = o.wrap ? o.wrap(inner) : inner;
  const hooks = new RecordingHooks();
  const makeBackend = (ctx: BackendContext) =>
    new SlurmBackend(
      {
        resource,
        host,
        jobsDir: resource.jobs_local_dir,
        tasksDir: resource.tasks_local_dir,
        batchWindowMs: 100,
        ...o.options,
      },
      ctx,
    );
  const ex = new Executor({ resource: resourceId(resource), backend: makeBackend, hooks });
  return { ex, hooks, backend: ex.backend, host };
}
