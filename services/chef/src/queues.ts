import type { Project, Queue } from '@computepods/protocol';
import { BuildRefusedError } from './errors.js';

/** What a rule asks of the queue its tasks go to. */
export interface QueueWant {
  readonly resource: string;
  readonly profile?: string | undefined;
}

/**
 * The project's queue for a rule: the one bound to the rule's resource and, when the rule names
 * a profile, that profile; without a profile, the only queue of that resource. The task's
 * profile is the chosen queue's: it comes from what an admin bound, never from a message.
 * Throws BuildRefusedError saying what an admin does about it.
 */
export function pickQueue(project: string, queues: readonly Queue[], want: QueueWant): Queue {
  const { resource, profile } = want;
  const forResource = queues.filter((q) => q.resource === resource);
  const matching =
    profile === undefined ? forResource : forResource.filter((q) => q.profile === profile);
  const [first, ...others] = matching;
  if (first !== undefined && others.length === 0) return first;
  if (first === undefined) {
    const which = profile === undefined ? '' : ` and profile "${profile}"`;
    const flag = profile === undefined ? ' [--profile F]' : ` --profile ${profile}`;
    throw new BuildRefusedError(
      'CP_CHEF_NO_QUEUE',
      `project "${project}" has no queue for resource "${resource}"${which}: an admin binds one with \`cpctrl queue create --project ${project} --resource ${resource}${flag}\``,
    );
  }
  const names = matching.map((q) => `${q.name} (profile ${q.profile ?? 'none'})`).join(', ');
  throw new BuildRefusedError(
    'CP_CHEF_NO_QUEUE',
    profile === undefined
      ? `project "${project}" has several queues for resource "${resource}": ${names}; the rule must name one with \`profile:\` in the chef definition`
      : `project "${project}" has several queues for resource "${resource}" and profile "${profile}": ${names}; an admin deletes all but one (cpctrl queue delete)`,
  );
}

/** What the chef knows of the project's record in `cp_<p>_config`. */
export type ProjectState =
  | { readonly kind: 'absent' }
  /** Put, but no valid version was ever read: builds are refused rather than guessed. */
  | { readonly kind: 'invalid' }
  | { readonly kind: 'valid'; readonly project: Project };

/** The queue a task is published to (`cp.<p>.tasks.<queue>`) and the profile it runs under. */
export interface Route {
  readonly queue: string;
  readonly profile?: string | undefined;
}

/**
 * Where a rule's task goes: the project must be active and have a queue for the rule. Pure, so
 * the whole decision is tested without a server.
 */
export function routeTask(project: string, state: ProjectState, want: QueueWant): Route {
  if (state.kind === 'absent')
    throw new BuildRefusedError(
      'CP_CHEF_PROJECT_MISSING',
      `project "${project}" has no record (key "project" of cp_${project}_config), so it has no queue: a lab admin creates it with \`cpctrl project create ${project}\` and binds a queue (\`cpctrl queue create\`); \`up\` does both for its project`,
    );
  if (state.kind === 'invalid')
    throw new BuildRefusedError(
      'CP_CHEF_PROJECT_INVALID',
      `project "${project}": its record (key "project" of cp_${project}_config) is invalid, see the chef's log; an admin rewrites it with cpctrl project`,
    );
  if (!state.project.active)
    throw new BuildRefusedError(
      'CP_CHEF_PROJECT_INACTIVE',
      `project "${project}" is inactive; an admin reactivates it before new builds run`,
    );
  const queue = pickQueue(project, state.project.queues, want);
  // The profile is the one the admin bound to the queue, never a message's.
  return { queue: queue.name, profile: queue.profile };
}
