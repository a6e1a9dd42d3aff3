import { CpError } from '@computepods/protocol';

/**
 * A task the runner will not run: its cwd is outside the workspace roots, or it asks for a
 * profile this runner does not serve. The task is recorded `failed` with this message and its
 * message acknowledged; sending it again fails the same way, so it is not retryable.
 */
export class TaskRefusedError extends CpError {
  constructor(
    /** The task field at fault. */
    readonly field: 'cwd' | 'profile' | 'gpu',
    message: string,
  ) {
    super('CP_TASK_REFUSED', message);
  }
}

/**
 * A task record's revision check failed: someone else (another runner) wrote it since, or, for
 * a task's first record, it exists already. Not retryable: the same write fails the same way,
 * and the transition is not acted on.
 */
export class RecordConflictError extends CpError {
  constructor(
    readonly taskId: string,
    /** The revision this runner expected (none: the write was a create). */
    readonly revision: number | undefined,
    options?: ErrorOptions,
  ) {
    const cause = options?.cause instanceof Error ? options.cause.message : String(options?.cause);
    super(
      'CP_RECORD_CONFLICT',
      `task record ${taskId} was changed by someone else (revision ${revision ?? 'none'} expected): ${cause}`,
      options,
    );
  }
}
