import {
  type Issue,
  issuesOf,
  subjects,
  TaskControlReply,
  type TaskState,
  TERMINAL_STATES,
} from '@computepods/protocol';
import type { Bus } from './bus.js';
import type { Logger } from './logger.js';

/** How long killTask asks before it gives up (ms). */
export const KILL_GIVE_UP_MS = 60_000;

/**
 * Asks the runner holding `taskId` to kill it (`task.control` request). A runner answers only for
 * tasks it holds, and a task may still sit on the runner's queue, so this asks again until the
 * task's record is terminal (killed, or it finished first; `stateOf` reads it, undefined while
 * there is none) or `giveUpMs` has passed. True once the task is known ended or killed.
 */
export async function killTask(
  bus: Bus,
  stateOf: (taskId: string) => Promise<TaskState | undefined>,
  taskId: string,
  logger: Logger,
  giveUpMs = KILL_GIVE_UP_MS,
): Promise<boolean> {
  const end = performance.now() + giveUpMs;
  const data = bus.encode('task.control', { taskId, action: 'kill' });
  while (performance.now() < end && !bus.closing) {
    const state = await stateOf(taskId).catch(() => undefined);
    if (state && TERMINAL_STATES.includes(state)) return true;
    const reply = await bus.nc
      .request(subjects.taskControl(bus.project), data, { timeout: 1_000 })
      .catch(() => undefined); // no runner holds it yet (still queued): ask again shortly
    if (reply) {
      const body = parseControlReply(reply.data);
      if (body.success && body.data.ok) {
        logger.info({ taskId }, 'runner killed the task of a cancelled build');
        return true;
      }
      if (body.success)
        logger.debug({ taskId, error: body.data.error?.message }, 'kill refused; asking again');
      else logger.warn({ taskId, issues: body.issues }, 'invalid answer to a kill; asking again');
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  logger.warn({ taskId }, 'could not kill the task of a cancelled build; it runs to its end');
  return false;
}

/** A runner's answer to task.control, validated; anything else names the fields it fails on. */
function parseControlReply(
  data: Uint8Array,
): { success: true; data: TaskControlReply } | { success: false; issues: Issue[] } {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(data));
  } catch (err) {
    return {
      success: false,
      issues: [{ path: '', message: `not JSON: ${(err as Error).message}` }],
    };
  }
  const parsed = TaskControlReply.safeParse(json);
  return parsed.success
    ? { success: true, data: parsed.data }
    : { success: false, issues: issuesOf(parsed.error) };
}
