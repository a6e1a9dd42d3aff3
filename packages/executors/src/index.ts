/**
 * Task lifecycle and backends that run tasks on computational resources.
 *
 *   import { createExecutor } from '@computepods/executors';
 *   const ex = createExecutor({ resource, profile, hooks: { record, publish } });
 *   await ex.submit({ taskId: 't1', resource: 'local', command: 'make', cwd: '/w', env: {}, gpu: false });
 *   const rec = await ex.wait('t1'); // finished | failed | killed, exit code, log paths
 */
export type { Backend, BackendContext, LogStream, RecordPatch } from './backend.js';
export {
  BackendUnavailableError,
  DuplicateTaskError,
  IllegalTransitionError,
  isTransient,
  RecordFailedError,
  ResourceCommandError,
  TaskNotFoundError,
  UnsafeValueError,
} from './errors.js';
export { Executor, type ExecutorHooks, type ExecutorOptions } from './executor.js';
export { LocalHandle, SlurmHandle } from './handle.js';
export {
  canTransition,
  checkPausable,
  checkTransition,
  isTerminal,
  PAUSABLE_ON_REQUEST,
} from './lifecycle.js';
export { LocalBackend, type LocalBackendOptions, readExit } from './local-backend.js';
export { backoffMs, DEFAULT_RETRY, type RetryPolicy, withRetry } from './retry.js';
