import type { TaskSubmitted } from '@computepods/protocol';
import { TaskRefusedError } from './errors.js';
import { checkProfile } from './task-profile.js';
import { checkCwd } from './workspace-roots.js';

export interface AdmissionPolicy {
  /** Resource id, for messages. */
  readonly resource: string;
  /** The profile id this runner serves (undefined: none, as a plain local runner). */
  readonly profile: string | undefined;
  readonly workspaceRoots: readonly string[];
  /** True when the task's cwd is a path on another machine (slurm_ssh without files). */
  readonly remoteCwd: (task: TaskSubmitted) => boolean;
  /** Why a task asking for a GPU cannot run here (a pilot worker), or undefined when it can. */
  readonly noGpu?: string | undefined;
}

/**
 * What a forged or mistaken task.submitted could make the runner do is limited here, before
 * anything is recorded as accepted: why the task must not run, or undefined when it may.
 */
export async function refusalOf(
  task: TaskSubmitted,
  policy: AdmissionPolicy,
): Promise<TaskRefusedError | undefined> {
  if (task.gpu && policy.noGpu) return new TaskRefusedError('gpu', policy.noGpu);
  return (
    checkProfile(task, policy.profile, policy.resource) ??
    (await checkCwd(task.cwd, policy.workspaceRoots, { remote: policy.remoteCwd(task) }))
  );
}
