import type { TaskState } from '@computepods/protocol';

/** A task was asked to move to a state it cannot reach from where it is. */
export class IllegalTransitionError extends Error {
  readonly code = 'CP_ILLEGAL_TRANSITION';
  readonly retryable = false;
  constructor(
    readonly taskId: string,
    readonly from: TaskState,
    readonly to: TaskState | 'resumed',
    hint?: string,
  ) {
    super(`task ${taskId} cannot go from ${from} to ${to}${hint ? `: ${hint}` : ''}`);
    this.name = 'IllegalTransitionError';
  }
}

/** No task with this id is known to this executor. */
export class TaskNotFoundError extends Error {
  readonly code = 'CP_TASK_NOT_FOUND';
  readonly retryable = false;
  constructor(readonly taskId: string) {
    super(`no task ${taskId} on this executor; check the task id and the resource it was sent to`);
    this.name = 'TaskNotFoundError';
  }
}

/**
 * A command on the resource (sbatch, squeue, sudo, ssh ...) failed. `retryable` says whether
 * the same call may succeed later (controller busy, connection lost) or needs a fix first.
 */
export class ResourceCommandError extends Error {
  readonly code = 'CP_RESOURCE_COMMAND';
  constructor(
    readonly command: string,
    readonly exitCode: number | null,
    readonly stderr: string,
    readonly retryable: boolean,
    options?: ErrorOptions,
  ) {
    super(
      `${command} failed${exitCode === null ? '' : ` (exit ${exitCode})`}: ${stderr.trim() || 'no output'}${retryable ? '; it will be retried' : '; fix the resource or profile configuration and resubmit'}`,
      options,
    );
    this.name = 'ResourceCommandError';
  }
}

/** A value cannot be put in a job script or command line safely, so it is refused. */
export class UnsafeValueError extends Error {
  readonly code = 'CP_UNSAFE_VALUE';
  readonly retryable = false;
  constructor(
    readonly field: string,
    readonly value: string,
    rule: string,
  ) {
    super(`refusing ${field} ${JSON.stringify(value)}: ${rule}`);
    this.name = 'UnsafeValueError';
  }
}

/** Task records could not be written (KV unreachable); the transition was not acted on. */
export class RecordFailedError extends Error {
  readonly code = 'CP_RECORD_FAILED';
  readonly retryable = true;
  constructor(
    readonly taskId: string,
    readonly state: TaskState,
    options?: ErrorOptions,
  ) {
    super(
      `could not record task ${taskId} as ${state}; nothing was done, it will be tried again (check the NATS connection)`,
      options,
    );
    this.name = 'RecordFailedError';
  }
}

/** True when an error says a retry can help (our errors, transport errors, errno codes). */
export function isTransient(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const e = err as { retryable?: unknown; code?: unknown };
  if (typeof e.retryable === 'boolean') return e.retryable;
  return (
    typeof e.code === 'string' &&
    ['ECONNRESET', 'ECONNREFUSED', 'ETIMEDOUT', 'EPIPE', 'EAGAIN', 'EHOSTUNREACH'].includes(e.code)
  );
}
