import { setTimeout as sleep } from 'node:timers/promises';
import {
  type Bus,
  isWrongLastSequence,
  killTask,
  type Logger,
  type TypedKv,
} from '@computepods/bus';
import {
  attemptTaskId,
  buckets,
  TaskRecord,
  type TaskSubmitted,
  TERMINAL_STATES,
} from '@computepods/protocol';
import type { z } from 'zod';

/** What MajorDomo reads of a task record here: its state, and whether its processes may still run. */
const TaskState = TaskRecord.pick({ state: true, stopping: true });
type TaskState = z.infer<typeof TaskState>;

/** Ended, its processes gone: a killed task is recorded `stopping` until its process group is. */
const over = (t: TaskState | undefined) =>
  t !== undefined && TERMINAL_STATES.includes(t.state) && t.stopping !== true;

/** How often a stopped task's record is read again while it is `stopping` (ms). */
const STOPPING_POLL_MS = 250;

/** Attempts of one build looked at, at most (a build is tried a few times, never hundreds). */
const MAX_ATTEMPTS = 100;

/**
 * What MajorDomo knows of a cancelled build's task that no runner may have taken yet: enough
 * for the record that closes it (its command as the rule writes it, unfilled: the chef fills
 * it, and its working folder is the chef's).
 */
export type UnrunTask = Pick<TaskSubmitted, 'resource' | 'command' | 'gpu'> & {
  readonly step: { readonly id: string; readonly pass: number; readonly chef: string };
};

/** What stop() did: the tasks it killed, and the attempt it closed before any runner took it. */
export interface Stopped {
  readonly stopped: string[];
  readonly closed?: string;
}

/**
 * Kills the tasks of a build's attempts that are still recorded unfinished (attemptTaskId's
 * records, read in turn until one is missing), each through the runner holding it
 * (task.control), asking again until its record is terminal, then waits until it is no longer
 * `stopping` (a command that traps SIGTERM outlives its record's `killed`), all within
 * `giveUpMs`. Read by polling, not through the bucket's shared watch: a watch would bring
 * MajorDomo every task record written from then on, two a compile, for a wait this rare. Returns
 * the task ids it had to stop. For a step's next build when no chef reported the end of the
 * cancelled build before it (its chef gone, or its kill slow): replicas of a runner share a
 * queue, and a runner stops an older task of a step only when it holds both (services/runner
 * README, "One task of a step at a time"), so the older could run on beside the newer and write
 * its outputs last.
 *
 * A task still queued, not yet taken up by any runner, has no record: the attempt after the last
 * one recorded ended (the first when none is) is closed with `unrun`, recorded `killed` before
 * any runner ran it. A runner's first record of a task is a create, which fails on a key that
 * exists: a runner taking it from the queue later leaves it ("task already has a record"), and a
 * chef still waiting on it hears it ended. Should a runner record it first, it is killed as the
 * others are. The record lasts as long as any (CP_RECORD_MAX_AGE_S): a task queued longer than
 * that would still run.
 */
export class AttemptStopper {
  #tasks: Promise<TypedKv<typeof TaskState>> | undefined;

  constructor(
    private readonly bus: Bus,
    private readonly logger: Logger,
  ) {}

  async stop(buildId: string, giveUpMs: number, unrun?: UnrunTask): Promise<Stopped> {
    // As every opener of the bucket opens it (its history kept, should this one create it).
    this.#tasks ??= this.bus
      .kv(buckets.tasks(this.bus.project), TaskState, { history: 5 })
      .catch((err) => {
        this.#tasks = undefined;
        throw err;
      });
    const tasks = await this.#tasks;
    const read = async (taskId: string) => (await tasks.get(taskId))?.value;
    const running: string[] = [];
    let n = 0;
    let last: TaskState | undefined;
    for (; n < MAX_ATTEMPTS; n++) {
      const taskId = attemptTaskId(buildId, n);
      const rec = await read(taskId);
      if (rec === undefined) break;
      last = rec;
      if (!over(rec)) running.push(taskId);
    }
    // An attempt under way is the one the chef joins: no later one can be queued behind it.
    let closed: string | undefined;
    if (unrun && n < MAX_ATTEMPTS && (last === undefined || TERMINAL_STATES.includes(last.state))) {
      const taskId = attemptTaskId(buildId, n);
      const made = await this.#close(tasks, taskId, buildId, unrun).catch((err: Error) => {
        // Not closed: the kills still go, and the next build as before.
        this.logger.warn(
          { taskId, buildId, err: err.message },
          "could not record a cancelled build's queued task ended; a runner may still run it",
        );
        return undefined;
      });
      if (made === 'closed') closed = taskId;
      else if (made === 'recorded' && !over(await read(taskId))) running.push(taskId);
    }
    const end = performance.now() + giveUpMs;
    const stateOf = async (taskId: string) => (await read(taskId))?.state;
    await Promise.all(
      running.map(async (taskId) => {
        if (!(await killTask(this.bus, stateOf, taskId, this.logger, giveUpMs))) return;
        while (performance.now() < end && !over(await read(taskId).catch(() => undefined)))
          await sleep(STOPPING_POLL_MS);
      }),
    );
    return { stopped: running, ...(closed ? { closed } : {}) };
  }

  /** Records attempt `taskId` killed, unless it has a record ('recorded': a runner took it). */
  async #close(
    tasks: TypedKv<typeof TaskState>,
    taskId: string,
    buildId: string,
    unrun: UnrunTask,
  ): Promise<'closed' | 'recorded'> {
    const time = new Date().toISOString();
    const record: TaskRecord = {
      task: {
        taskId,
        buildId,
        resource: unrun.resource,
        command: unrun.command,
        cwd: '.',
        env: {},
        gpu: unrun.gpu,
        step: unrun.step,
      },
      state: 'killed',
      // Nothing ran, so nothing was written: log readers end at once (as for a task's empty logs).
      emptyLogs: ['stdout', 'stderr'],
      reason: `cancelled before any runner took it: no chef reported the end of build ${buildId} in time, so MajorDomo recorded its task ended; a runner that takes it from its queue leaves it`,
      history: [
        { state: 'created', time },
        { state: 'killed', time },
      ],
      updated: time,
    };
    try {
      await tasks.withSchema(TaskRecord).create(taskId, record);
      return 'closed';
    } catch (err) {
      if (isWrongLastSequence(err)) return 'recorded';
      throw err;
    }
  }
}
