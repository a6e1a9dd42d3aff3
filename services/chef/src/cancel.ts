import type { Bus, Logger, TypedKv } from '@computepods/bus';
import {
  type Issue,
  issuesOf,
  subjects,
  TaskControlReply,
  TERMINAL_STATES,
} from '@computepods/protocol';
import type { TaskView } from './task-view.js';

interface Held {
  readonly controller: AbortController;
  taskId: string | undefined;
  /** Requests for this build being handled: MajorDomo may re-send one after a restart. */
  refs: number;
  /** Begun while a cancelled attempt of the same build still winds down. */
  readonly afterCancel: boolean;
  /**
   * The task every request sharing the hold runs or joins (see taskIdFor), picked once: twin
   * requests each made a task of their own, and both ran.
   */
  pick: Promise<string> | undefined;
  /** Settles when the last request sharing this hold ends. */
  readonly ended: Promise<void>;
  readonly settle: () => void;
  /** The cancelled hold this one came after, while it still winds down. */
  readonly predecessor: Promise<void> | undefined;
}

/**
 * The builds this chef holds, so a `build.cancel` can stop one: before its task is submitted the
 * build just ends as cancelled; after, the runner is asked to kill the task. Requests for one
 * build id share a cancellation while it is in flight; one that comes after a cancel starts a
 * new hold (a fresh attempt), never the cancelled one's fate. The signal begin() returns names
 * the hold in submitted() and end().
 */
export class InFlightBuilds {
  /** The current hold of each build id; cancelled ones still winding down are not in it. */
  readonly #held = new Map<string, Held>();
  readonly #bySignal = new WeakMap<AbortSignal, Held>();

  constructor(readonly kill: (taskId: string) => Promise<void>) {}

  begin(buildId: string): AbortSignal {
    const known = this.#held.get(buildId);
    if (known && !known.controller.signal.aborted) {
      known.refs++;
      return known.controller.signal;
    }
    let settle = () => {};
    const ended = new Promise<void>((resolve) => {
      settle = resolve;
    });
    const held: Held = {
      controller: new AbortController(),
      taskId: undefined,
      refs: 1,
      afterCancel: known !== undefined,
      pick: undefined,
      ended,
      settle,
      predecessor: known?.ended,
    };
    this.#held.set(buildId, held);
    this.#bySignal.set(held.controller.signal, held);
    return held.controller.signal;
  }

  /**
   * True for an attempt begun while a cancelled one of the same build winds down: its task needs
   * an id of its own (the cancelled one's task id is being killed, and a publish with it would
   * be dropped as a duplicate).
   */
  afterCancel(signal: AbortSignal): boolean {
    return this.#bySignal.get(signal)?.afterCancel ?? false;
  }

  /**
   * Resolves once the cancelled attempt this one came after has ended (at once when there is
   * none, or when this one is cancelled too). Its task may have run to its end before the kill
   * reached it, its result recorded: the build is then done, and running it again is a
   * duplicate (found by test/chaos: a cancel and a re-send 6 ms apart ran the build twice). Nor
   * do two tasks of a build write its outputs at once. True when there was one to wait for.
   */
  async predecessorEnded(signal: AbortSignal): Promise<boolean> {
    const before = this.#bySignal.get(signal)?.predecessor;
    if (!before || signal.aborted) return false;
    let onAbort = () => {};
    await Promise.race([
      before,
      new Promise<void>((resolve) => {
        onAbort = resolve;
        signal.addEventListener('abort', onAbort, { once: true });
      }),
    ]);
    signal.removeEventListener('abort', onAbort);
    return true;
  }

  /** The hold's task id: `pick`ed by its first request, the same for every other sharing it. */
  taskIdOnce(signal: AbortSignal, pick: () => Promise<string>): Promise<string> {
    const held = this.#bySignal.get(signal);
    if (!held) return pick();
    held.pick ??= pick();
    return held.pick;
  }

  /** The build's task is on the runner queue; a cancel that came first kills it now. */
  submitted(signal: AbortSignal, taskId: string): void {
    const held = this.#bySignal.get(signal);
    if (!held) return;
    held.taskId = taskId;
    if (held.controller.signal.aborted) void this.kill(taskId);
  }

  end(buildId: string, signal: AbortSignal): void {
    const held = this.#bySignal.get(signal);
    if (!held || --held.refs > 0) return;
    held.settle();
    if (this.#held.get(buildId) === held) this.#held.delete(buildId);
  }

  /** False when this chef does not hold the build (another chef's, or already finished). */
  cancel(buildId: string, reason: string): boolean {
    const held = this.#held.get(buildId);
    if (!held) return false;
    if (held.controller.signal.aborted) return true;
    held.controller.abort(reason);
    if (held.taskId) void this.kill(held.taskId);
    return true;
  }

  get size(): number {
    return this.#held.size;
  }
}

const KILL_GIVE_UP_MS = 60_000;

/**
 * Asks the runner holding `taskId` to kill it (`task.control` request). A runner answers only for
 * tasks it holds, and a task may still sit on the runner's queue, so this asks again until the
 * task's record is terminal (killed, or it finished first) or a minute has passed.
 */
export async function killTask(
  bus: Bus,
  tasks: TypedKv<typeof TaskView>,
  taskId: string,
  logger: Logger,
): Promise<void> {
  const end = performance.now() + KILL_GIVE_UP_MS;
  const data = bus.encode('task.control', { taskId, action: 'kill' });
  while (performance.now() < end && !bus.closing) {
    const rec = (await tasks.get(taskId).catch(() => undefined))?.value;
    if (rec && TERMINAL_STATES.includes(rec.state)) return;
    const reply = await bus.nc
      .request(subjects.taskControl(bus.project), data, { timeout: 1_000 })
      .catch(() => undefined); // no runner holds it yet (still queued): ask again shortly
    if (reply) {
      const body = parseControlReply(reply.data);
      if (body.success && body.data.ok) {
        logger.info({ taskId }, 'runner killed the task of a cancelled build');
        return;
      }
      if (body.success)
        logger.debug({ taskId, error: body.data.error?.message }, 'kill refused; asking again');
      else logger.warn({ taskId, issues: body.issues }, 'invalid answer to a kill; asking again');
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  logger.warn({ taskId }, 'could not kill the task of a cancelled build; it runs to its end');
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

/** Subscribes to `build.cancel`; cancels for builds this chef does not hold are ignored. */
export function listenForCancels(bus: Bus, held: InFlightBuilds): () => void {
  const sub = bus.listen(subjects.buildCancel(bus.project), {
    accept: ['build.cancel'],
    handler: (msg) => {
      const { buildId, reason } = msg.body;
      const mine = held.cancel(buildId, reason);
      bus.logger[mine ? 'info' : 'debug'](
        { buildId, reason, cid: msg.cid },
        mine ? 'cancelling a build' : 'cancel for a build this chef does not hold; ignored',
      );
    },
  });
  return () => sub.unsubscribe();
}
