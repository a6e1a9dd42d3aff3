import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  checkProfileFor,
  InvalidConfigError,
  type Profile,
  type Resource,
  resourceId,
} from '@computepods/protocol';
import { SshPool } from '@computepods/transport';
import type { BackendContext, UnpublishedLogs } from './backend.js';
import { Executor, type ExecutorHooks } from './executor.js';
import { KubernetesBackend } from './kubernetes-backend.js';
import type { KubernetesStagingOptions } from './kubernetes-stage-server.js';
import type { Liveness } from './liveness.js';
import { LocalBackend } from './local-backend.js';
import type { RetryPolicy } from './retry.js';
import { SlurmBackend } from './slurm-backend.js';
import type { KeepPolicy } from './slurm-sweep.js';
import { SshHost, sshTargetOf } from './ssh-host.js';
import { SudoHost } from './sudo-host.js';
import type { TaskStages } from './task-stages.js';
import type { TaskStaging } from './task-staging.js';

export interface BackendTuning {
  /** Between status polls (default: the resource's jobs_poll_interval). */
  readonly pollMs?: number;
  /** SLURM: how long new tasks are gathered into one batch (default 0.5 s). */
  readonly batchWindowMs?: number;
  /** SLURM: retries of a command before its tasks are paused. */
  readonly retry?: RetryPolicy;
  /** Local: tasks at once, overriding parallel_tasks_per_job. */
  readonly parallel?: number;
  /** Local: between SIGTERM and SIGKILL. */
  readonly killGraceMs?: number;
  /** Local: parent of task folders, overriding jobs_local_dir. */
  readonly jobsDir?: string;
  /** Local: where task folders were before jobsDir; its old-layout folders are swept too. */
  readonly oldJobsDir?: string;
  /**
   * How long ended task folders (local), job folders (SLURM) and Jobs (Kubernetes) are kept
   * (local-sweep.ts, slurm-sweep.ts, kubernetes-cleanup.ts).
   */
  readonly keep?: KeepPolicy;
  /** Between two sweeps of ended task folders, job folders or Jobs (default 60 s). */
  readonly sweepEveryMs?: number;
  /** The tasks whose logs are not yet fully published: their files are never swept. */
  readonly unpublishedLogs?: UnpublishedLogs;
  /** Local: declared files moved in and out by someone who sees the task's cwd (pilots). */
  readonly staging?: TaskStaging;
  /** Kubernetes: the stage server pods fetch declared inputs from and send outputs to. */
  readonly kubernetesStaging?: KubernetesStagingOptions | undefined;
  /** Local: where each task's time goes, stage by stage (task-stages.ts). */
  readonly stages?: TaskStages | undefined;
  /** Local: queued tasks start before their running record while this shows no silence (liveness.ts). */
  readonly liveness?: Liveness | undefined;
  /** Local: how long the spawner holds a started task's pid for its exit (default 100 ms). */
  readonly pidHoldMs?: number | undefined;
  /**
   * Local: the runner id marked in jobsDir as keeping its task folders there (LocalBackend's
   * RUNNERS_DIR); not for a pilot worker, whose folder is its pilot's and swept with it.
   */
  readonly runnerMark?: string | undefined;
  /**
   * The runner process's $SRV id: written in its records (TaskRecord.runnerInstance) and, local,
   * in its mark (LocalBackend's runnerInstance).
   */
  readonly runnerInstance?: string | undefined;
}

export interface CreateExecutorOptions {
  readonly resource: Resource;
  /** The queue name the runner serves (default: the resource's id or the slug of its name). */
  readonly resourceId?: string;
  /** Who runs the jobs: required for slurm_sudo and slurm_ssh. */
  readonly profile?: Profile | undefined;
  readonly hooks: ExecutorHooks;
  readonly runner?: string;
  /** Tries of a record write that failed (Executor's recordRetry). */
  readonly recordRetry?: RetryPolicy;
  /** Extra env for SLURM client commands, over the resource's slurm_client_env. */
  readonly clientEnv?: Readonly<Record<string, string>> | undefined;
  /** Shared SSH pool (slurm_ssh); one is made (and closed with the executor) otherwise. */
  readonly sshPool?: SshPool;
  /** The project's queue the runner serves: on Kubernetes, the Kueue LocalQueue label. */
  readonly queue?: string | undefined;
  readonly backendOptions?: BackendTuning;
}

/** An Executor with the backend the resource's type calls for. */
export function createExecutor(options: CreateExecutorOptions): Executor {
  const { resource, profile, hooks } = options;
  const tune = options.backendOptions ?? {};
  const id = options.resourceId ?? resourceId(resource);
  const base = {
    resource: id,
    hooks,
    ...(options.runner ? { runner: options.runner } : {}),
    ...(tune.runnerInstance ? { runnerInstance: tune.runnerInstance } : {}),
    ...(options.recordRetry ? { recordRetry: options.recordRetry } : {}),
    ...(tune.stages && resource.type === 'local' ? { stages: tune.stages } : {}),
  };
  const sweep = {
    ...(tune.keep ? { keep: tune.keep } : {}),
    ...(tune.sweepEveryMs !== undefined ? { sweepEveryMs: tune.sweepEveryMs } : {}),
    ...(tune.unpublishedLogs ? { unpublishedLogs: tune.unpublishedLogs } : {}),
  };
  if (resource.type === 'local') {
    const makeBackend = (ctx: BackendContext) =>
      new LocalBackend(
        {
          resource,
          ...(tune.jobsDir ? { jobsDir: tune.jobsDir } : {}),
          ...(tune.oldJobsDir ? { oldJobsDir: tune.oldJobsDir } : {}),
          ...(tune.parallel ? { parallel: tune.parallel } : {}),
          ...(tune.killGraceMs !== undefined ? { killGraceMs: tune.killGraceMs } : {}),
          ...(tune.pollMs !== undefined ? { pollMs: tune.pollMs } : {}),
          ...(tune.staging ? { staging: tune.staging } : {}),
          ...(tune.stages ? { stages: tune.stages } : {}),
          ...(tune.liveness ? { liveness: tune.liveness } : {}),
          ...(tune.pidHoldMs !== undefined ? { pidHoldMs: tune.pidHoldMs } : {}),
          ...(tune.runnerMark ? { runner: tune.runnerMark } : {}),
          ...(tune.runnerInstance ? { runnerInstance: tune.runnerInstance } : {}),
          ...sweep,
        },
        ctx,
      );
    return new Executor({ ...base, backend: makeBackend });
  }
  if (!profile)
    throw new InvalidConfigError(`executor for resource "${resource.name}"`, [
      `profile: a ${resource.type} resource needs a ${resource.type} profile (who runs the jobs)`,
    ]);
  checkProfileFor(resource, profile);
  if (resource.type === 'kubernetes' && profile.resource_type === 'kubernetes') {
    const makeBackend = (ctx: BackendContext) =>
      new KubernetesBackend(
        {
          resource,
          profile,
          resourceId: id,
          queue: options.queue,
          jobsDir:
            tune.jobsDir ?? resource.jobs_local_dir ?? join(tmpdir(), 'computepods-kubernetes', id),
          ...(tune.pollMs !== undefined ? { pollMs: tune.pollMs } : {}),
          ...(tune.retry ? { retry: tune.retry } : {}),
          ...(tune.kubernetesStaging ? { staging: tune.kubernetesStaging } : {}),
          ...sweep,
        },
        ctx,
      );
    return new Executor({ ...base, backend: makeBackend });
  }
  const clientEnv = {
    ...(resource.type === 'kubernetes' ? {} : resource.slurm_client_env),
    ...options.clientEnv,
  };
  const slurmTune = {
    ...(tune.pollMs !== undefined ? { pollMs: tune.pollMs } : {}),
    ...(tune.batchWindowMs !== undefined ? { batchWindowMs: tune.batchWindowMs } : {}),
    ...(tune.retry ? { retry: tune.retry } : {}),
    ...sweep,
  };
  if (resource.type === 'slurm_sudo' && profile.resource_type === 'slurm_sudo') {
    const host = new SudoHost({
      username: profile.username,
      clientEnv,
      cwd: resource.jobs_local_dir,
    });
    const makeBackend = (ctx: BackendContext) =>
      new SlurmBackend(
        {
          resource,
          host,
          jobsDir: resource.jobs_local_dir,
          tasksDir: resource.tasks_local_dir,
          ...slurmTune,
        },
        ctx,
      );
    return new Executor({ ...base, backend: makeBackend });
  }
  if (resource.type === 'slurm_ssh' && profile.resource_type === 'slurm_ssh') {
    const ownPool = !options.sshPool;
    const pool = options.sshPool ?? new SshPool();
    const host = new SshHost({
      pool,
      target: sshTargetOf(resource, profile),
      clientEnv,
      localJobsDir: resource.jobs_local_dir,
      ownsPool: ownPool,
    });
    const makeBackend = (ctx: BackendContext) =>
      new SlurmBackend(
        {
          resource,
          host,
          jobsDir: profile.jobs_remote_dir,
          tasksDir: profile.tasks_remote_dir,
          ...slurmTune,
        },
        ctx,
      );
    return new Executor({ ...base, backend: makeBackend });
  }
  throw new InvalidConfigError(`profile "${profile.name}"`, [
    `resource_type: "${profile.resource_type}" does not match resource type "${resource.type}"`,
  ]);
}
