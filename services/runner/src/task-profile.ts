import type { TaskSubmitted } from '@computepods/protocol';
import { TaskRefusedError } from './errors.js';

/**
 * A runner serves one resource under one profile, so a task asking for another profile must
 * not run here under this one's account. A task without `profile` takes the runner's.
 * (Queues that map several profiles to runners extend this one check.)
 */
export function checkProfile(
  task: Pick<TaskSubmitted, 'profile'>,
  served: string | undefined,
  resource: string,
): TaskRefusedError | undefined {
  if (task.profile === undefined || task.profile === served) return undefined;
  return new TaskRefusedError(
    'profile',
    served === undefined
      ? `profile "${task.profile}" was asked for, but this runner of resource "${resource}" serves no profile; send the task to a runner started with CP_PROFILE=${task.profile}`
      : `profile "${task.profile}" is not this runner's profile "${served}" (resource "${resource}"); the task was not run: send it to the runner serving profile "${task.profile}"`,
  );
}
