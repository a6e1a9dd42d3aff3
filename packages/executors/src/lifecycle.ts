import type { TaskState } from '@computepods/protocol';
import { IllegalTransitionError } from './errors.js';

/**
 * The task lifecycle: created → submitted → running → finished | failed | killed, and paused.
 *
 * - submitted → finished | failed is allowed: a short SLURM job can start and end between two
 *   polls, so the runner never saw it running and does not pretend it did.
 * - paused is reachable from created and submitted on request (a user or MajorDomo asks), and
 *   from running only when the runner itself cannot reach the resource (transport errors that
 *   outlived their retries, as AiiDA pauses): a running process or SLURM job cannot be held
 *   without keeping its allocation, so a running task is never paused on request; kill it.
 *   A paused task holds no process handle, connection or poll; the job may still run on the
 *   cluster, and its result is collected after resume.
 * - resume returns a paused task to exactly the state it was paused in (`pausedFrom`).
 */
const NEXT: Readonly<Record<TaskState, readonly TaskState[]>> = {
  created: ['submitted', 'paused', 'killed', 'failed'],
  submitted: ['running', 'finished', 'failed', 'killed', 'paused'],
  running: ['finished', 'failed', 'killed', 'paused'],
  paused: ['created', 'submitted', 'running', 'killed'],
  finished: [],
  failed: [],
  killed: [],
};

/** States a task may be paused in on request. */
export const PAUSABLE_ON_REQUEST: readonly TaskState[] = ['created', 'submitted'];

export function isTerminal(state: TaskState): boolean {
  return state === 'finished' || state === 'failed' || state === 'killed';
}

export function canTransition(from: TaskState, to: TaskState, pausedFrom?: TaskState): boolean {
  if (!NEXT[from].includes(to)) return false;
  if (from === 'paused' && to !== 'killed') return to === pausedFrom;
  return true;
}

/** Throws IllegalTransitionError, with a hint on what to do instead, unless from → to is legal. */
export function checkTransition(
  taskId: string,
  from: TaskState,
  to: TaskState,
  pausedFrom?: TaskState,
): void {
  if (canTransition(from, to, pausedFrom)) return;
  let hint: string | undefined;
  if (isTerminal(from)) hint = `it already ended (${from}); submit a new task to run it again`;
  else if (from === 'paused')
    hint = `a paused task resumes to the state it was paused in (${pausedFrom ?? 'unknown'})`;
  throw new IllegalTransitionError(taskId, from, to, hint);
}

/** Throws unless a task in `state` may be paused on request. */
export function checkPausable(taskId: string, state: TaskState): void {
  if (PAUSABLE_ON_REQUEST.includes(state)) return;
  const hint =
    state === 'running'
      ? 'a running task keeps its process or SLURM allocation, so it cannot be paused; kill it, or wait for it to end'
      : state === 'paused'
        ? 'it is already paused'
        : `it already ended (${state})`;
  throw new IllegalTransitionError(taskId, state, 'paused', hint);
}
