import { CpError } from '@computepods/protocol';

/**
 * A task the runner will not run: its cwd is outside the workspace roots, or it asks for a
 * profile this runner does not serve. The task is recorded `failed` with this message and its
 * message acknowledged; sending it again fails the same way, so it is not retryable.
 */
export class TaskRefusedError extends CpError {
  constructor(
    /** The task field at fault. */
    readonly field: 'cwd' | 'profile',
    message: string,
  ) {
    super('CP_TASK_REFUSED', message);
  }
}
