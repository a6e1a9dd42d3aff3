/**
 * Task lifecycle and backends that run tasks on computational resources.
 *
 *   import { createExecutor } from '@computepods/executors';
 *   const ex = createExecutor({ resource, profile, hooks: { record, publish } });
 *   await ex.submit({ taskId: 't1', resource: 'local', command: 'make', cwd: '/w', env: {}, gpu: false });
 *   const rec = await ex.wait('t1'); // finished | failed | killed, exit code, log paths
 */
export type {
  Backend,
  BackendContext,
  LogRead,
  LogStream,
  RecordPatch,
  UnpublishedLogs,
} from './backend.js';
export {
  type BackendTuning,
  type CreateExecutorOptions,
  createExecutor,
} from './create-executor.js';
export {
  IllegalTransitionError,
  isRetryable,
  RecordFailedError,
  ResourceCommandError,
  TaskNotFoundError,
  UnsafeValueError,
} from './errors.js';
export {
  Executor,
  type ExecutorHooks,
  type ExecutorOptions,
  type SubmitOptions,
} from './executor.js';
export { KubernetesHandle, LocalHandle, SlurmHandle } from './handle.js';
export { inTurn } from './key-turns.js';
export { KubernetesBackend, type KubernetesBackendOptions } from './kubernetes-backend.js';
export { jobNameFor } from './kubernetes-names.js';
export type { KubernetesStagingOptions } from './kubernetes-stage-server.js';
export {
  canTransition,
  checkPausable,
  checkTransition,
  isTerminal,
  PAUSABLE_ON_REQUEST,
} from './lifecycle.js';
export { type Liveness, LoopLiveness, type LoopLivenessOptions } from './liveness.js';
export { LocalBackend, type LocalBackendOptions, readExit } from './local-backend.js';
export { backoffMs, DEFAULT_RETRY, type RetryPolicy, withRetry } from './retry.js';
export { shq } from './sh-quote.js';
export { SlurmBackend, type SlurmBackendOptions } from './slurm-backend.js';
export { BatchingError, type BatchPlan, planBatches, type TaskNeeds } from './slurm-batching.js';
export { TaskFileError, taskTree, workDirOf } from './slurm-files.js';
export { commandFailed, type HostResult, type SlurmHost } from './slurm-host.js';
export { squeueArgs } from './slurm-queue.js';
export { effectiveConfig, type JobSpec, jobScript, sbatchArgs } from './slurm-script.js';
export { DEFAULT_KEEP, type KeepPolicy } from './slurm-sweep.js';
export { SshHost, type SshHostOptions, sshTargetOf } from './ssh-host.js';
export { SudoHost, type SudoHostOptions } from './sudo-host.js';
export { type Stage, type StageLine, TaskStages } from './task-stages.js';
export { fetchAuxiliaries, fetchOutputs, type TaskStaging } from './task-staging.js';
