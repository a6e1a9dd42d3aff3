import type { TypedKv } from '@computepods/bus';
import { CpError, TERMINAL_STATES } from '@computepods/protocol';
import type { TaskView } from './task-view.js';

/**
 * How long a chef waits for a runner to take a task it submitted (CP_CHEF_TASK_RECORD_MS,
 * default 1 day) and for the task to end (CP_CHEF_TASK_WAIT_MS, default 7 days; config.ts).
 * Without them a task whose record never appears (no runner serves the queue, the record was
 * deleted) held one of the chef's build slots for ever. Not shorter by default: a task waits
 * unrecorded in its queue while pilots are busy, or while the runner is down for a night's
 * maintenance.
 */
export interface TaskWaitLimits {
  readonly recordMs: number;
  readonly totalMs: number;
}

/** The chef gave up waiting for a task's record. */
export class TaskWaitError extends CpError<'CP_TASK_NO_RECORD' | 'CP_TASK_WAIT_TIMEOUT'> {}

/** A task's record followed since before it was read (TypedKv.follow). */
export type TaskFollower = Awaited<ReturnType<TypedKv<typeof TaskView>['follow']>>;

/**
 * The task's terminal record; rejects with TaskWaitError when no runner recorded the task within
 * `recordMs`, or it did not end within `totalMs`, and with the signal's reason on abort. With
 * `follower` (the task's record followed already, and read), it waits on that one, with no read
 * of its own.
 */
export async function waitForTerminal(
  tasks: TypedKv<typeof TaskView>,
  taskId: string,
  queue: string,
  limits: TaskWaitLimits,
  signal?: AbortSignal,
  follower?: TaskFollower,
): Promise<TaskView> {
  const stop = new AbortController();
  const timers: NodeJS.Timeout[] = [];
  const giveUp = (err: TaskWaitError) => stop.abort(err);
  timers.push(
    setTimeout(() => {
      void tasks.get(taskId).then(
        (rec) => {
          if (!rec)
            giveUp(
              new TaskWaitError(
                'CP_TASK_NO_RECORD',
                `no runner recorded task ${taskId} within ${limits.recordMs} ms: is a runner serving queue ${queue} (CP_QUEUE=${queue})?`,
              ),
            );
        },
        () => undefined,
      );
    }, limits.recordMs),
    setTimeout(
      () =>
        giveUp(
          new TaskWaitError(
            'CP_TASK_WAIT_TIMEOUT',
            `task ${taskId} did not end within ${limits.totalMs} ms (CP_CHEF_TASK_WAIT_MS); see \`cpctrl task list\``,
          ),
        ),
      limits.totalMs,
    ),
  );
  const abort = () => stop.abort(signal?.reason);
  signal?.addEventListener('abort', abort, { once: true });
  if (signal?.aborted) abort();
  try {
    const ended = (r: TaskView) => TERMINAL_STATES.includes(r.state);
    return await (follower
      ? follower.until(ended, stop.signal)
      : tasks.waitFor(taskId, ended, stop.signal));
  } finally {
    for (const t of timers) clearTimeout(t);
    signal?.removeEventListener('abort', abort);
  }
}
