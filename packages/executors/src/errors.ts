import { CpError, isRetryable, type TaskState } from '@computepods/protocol';

/** A task was asked to move to a state it cannot reach from where it is. */
export class IllegalTransitionError extends CpError {
  constructor(
    readonly taskId: string,
    readonly from: TaskState,
    readonly to: TaskState | 'resumed',
    hint?: string,
  ) {
    super(
      'CP_ILLEGAL_TRANSITION',
      `task ${taskId} cannot go from ${from} to ${to}${hint ? `: ${hint}` : ''}`,
    );
  }
}

/** No task with this id is known to this executor. */
export class TaskNotFoundError extends CpError {
  constructor(readonly taskId: string) {
    super(
      'CP_TASK_NOT_FOUND',
      `no task ${taskId} on this executor; check the task id and the resource it was sent to`,
    );
  }
}

/**
 * A command on the resource (sbatch, squeue, sudo, ssh ...) failed. `retryable` says whether
 * the same call may succeed later (controller busy, connection lost) or needs a fix first.
 */
export class ResourceCommandError extends CpError {
  constructor(
    readonly command: string,
    readonly exitCode: number | null,
    readonly stderr: string,
    retryable: boolean,
    options?: ErrorOptions,
  ) {
    super(
      'CP_RESOURCE_COMMAND',
      `${command} failed${exitCode === null ? '' : ` (exit ${exitCode})`}: ${stderr.trim() || 'no output'}${retryable ? '; it will be retried' : '; fix the resource or profile configuration and resubmit'}`,
      { ...options, retryable },
    );
  }
}

/** A value cannot be put in a job script or command line safely, so it is refused. */
export class UnsafeValueError extends CpError {
  constructor(
    readonly field: string,
    readonly value: string,
    rule: string,
  ) {
    super('CP_UNSAFE_VALUE', `refusing ${field} ${JSON.stringify(value)}: ${rule}`);
  }
}

/** Task records could not be written (KV unreachable); the transition was not acted on. */
export class RecordFailedError extends CpError {
  constructor(
    readonly taskId: string,
    readonly state: TaskState,
    options?: ErrorOptions,
  ) {
    super(
      'CP_RECORD_FAILED',
      `could not record task ${taskId} as ${state}; nothing was done, it will be tried again (check the NATS connection)`,
      { ...options, retryable: true },
    );
  }
}

/** Every retry decision of the executors is protocol's one rule. */
export { isRetryable };
