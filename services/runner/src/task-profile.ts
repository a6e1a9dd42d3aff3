import {
  type Profile,
  profileId,
  type ResolvedQueue,
  type TaskSubmitted,
} from '@computepods/protocol';
import type { RunnerConfig } from './config.js';
import { TaskRefusedError } from './errors.js';

/**
 * The profile id this runner serves: a pilot worker's runner's (CP_PILOT_PROFILE); else the one
 * its queue grants (chefs put that id in task.profile); else CP_PROFILE; else the id of the
 * profile it loaded (CP_PROFILE_FILE); none for a plain local runner.
 */
export function servedProfile(
  cfg: Pick<RunnerConfig, 'pilotProfile' | 'profile'>,
  queue: ResolvedQueue | undefined,
  profile: Profile | undefined,
): string | undefined {
  if (cfg.pilotProfile) return cfg.pilotProfile;
  if (queue) return queue.queue.profile;
  return cfg.profile ?? (profile ? profileId(profile) : undefined);
}

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
