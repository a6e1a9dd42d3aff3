import type { TypedKv } from '@computepods/bus';
import { CpError, TERMINAL_STATES } from '@computepods/protocol';
import type { TaskView } from './task-view.js';

/**
 * How long a chef waits for a runner to take a task it submitted (CP_CHEF_TASK_RECORD_MS,
 * default 1 day), for the task to end (CP_CHEF_TASK_WAIT_MS, default 7 days), and for an ended
 * task's processes to be gone (CP_CHEF_STOP_WAIT_MS, default 30 s; config.ts).
 * Without them a task whose record never appears (no runner serves the queue, the record was
 * deleted) held one of the chef's build slots for ever. Not shorter by default: a task waits
 * unrecorded in its queue while pilots are busy, or while the runner is down for a night's
 * maintenance.
 */
export interface TaskWaitLimits {
  readonly recordMs: number;
  readonly totalMs: number;
  /**
   * An end recorded `stopping` (killed or timed out, its processes signalled, maybe not gone) is
   * waited on until the runner takes the flag off, at most this long: then it counts as ended
   * all the same (its runner died, or a process will not die), `stopping` still set.
   */
  readonly stopMs: number;
}

/** The chef gave up waiting for a task's record. */
export class TaskWaitError extends CpError<'CP_TASK_NO_RECORD' | 'CP_TASK_WAIT_TIMEOUT'> {}

/** A task's record followed since before it was read (TypedKv.follow). */
export type TaskFollower = Awaited<ReturnType<TypedKv<typeof TaskView>['follow']>>;

/**
 * The task's terminal record, once nothing of it runs (see `stopping`: a build's end or its next
 * attempt must not overlap a command that outlives its SIGTERM); rejects with TaskWaitError when
 * no runner recorded the task within `recordMs`, or it did not end within `totalMs`, and with the
 * signal's reason on abort. With `follower` (the task's record followed already, and read), it
 * waits on that one, with no read of its own.
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
  const ended = stoppedEnd(limits.stopMs, stop, timers);
  try {
    return await (follower
      ? follower.until(ended.done, stop.signal)
      : tasks.waitFor(taskId, ended.done, stop.signal));
  } catch (err) {
    if (err === STOP_WAITED && ended.last) return ended.last;
    throw err;
  } finally {
    for (const t of timers) clearTimeout(t);
    signal?.removeEventListener('abort', abort);
  }
}

/**
 * Waits until an ended task's record is no longer `stopping` (at once when `rec` is not), at most
 * `stopMs`; resolves with whether it was seen so (false: it still was when the wait ran out).
 * Rejects with the signal's reason on abort.
 */
export async function stoppedTask(
  tasks: TypedKv<typeof TaskView>,
  taskId: string,
  rec: TaskView,
  stopMs: number,
  signal: AbortSignal,
): Promise<boolean> {
  if (!TERMINAL_STATES.includes(rec.state) || rec.stopping !== true) return true;
  const stop = new AbortController();
  const timers: NodeJS.Timeout[] = [];
  const abort = () => stop.abort(signal.reason);
  signal.addEventListener('abort', abort, { once: true });
  if (signal.aborted) abort();
  const ended = stoppedEnd(stopMs, stop, timers);
  try {
    await tasks.waitFor(taskId, ended.done, stop.signal);
    return true;
  } catch (err) {
    if (err === STOP_WAITED) return false;
    throw err;
  } finally {
    for (const t of timers) clearTimeout(t);
    signal.removeEventListener('abort', abort);
  }
}

/** The reason a wait on a `stopping` end is aborted with once it ran out (TaskWaitLimits.stopMs). */
const STOP_WAITED = Symbol('stop wait ran out');

/**
 * The test a wait ends on: an end no longer `stopping`. The first `stopping` end seen starts
 * `stopMs`, after which `stop` is aborted with STOP_WAITED and the last such end (`last`) stands.
 */
function stoppedEnd(stopMs: number, stop: AbortController, timers: NodeJS.Timeout[]) {
  const ended = {
    last: undefined as TaskView | undefined,
    done: (r: TaskView): boolean => {
      if (!TERMINAL_STATES.includes(r.state)) return false;
      if (r.stopping !== true) return true;
      if (!ended.last) timers.push(setTimeout(() => stop.abort(STOP_WAITED), stopMs));
      ended.last = r;
      return false;
    },
  };
  return ended;
}
