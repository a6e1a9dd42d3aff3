import { setTimeout as sleep } from 'node:timers/promises';
import { type Bus, killTask, type Logger, type TypedKv } from '@computepods/bus';
import { attemptTaskId, buckets, TaskRecord, TERMINAL_STATES } from '@computepods/protocol';
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
 * its outputs last. A task not yet taken up by any runner has no record and is not seen here.
 */
export class AttemptStopper {
  #tasks: Promise<TypedKv<typeof TaskState>> | undefined;

  constructor(
    private readonly bus: Bus,
    private readonly logger: Logger,
  ) {}

  async stop(buildId: string, giveUpMs: number): Promise<string[]> {
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
    for (let n = 0; n < MAX_ATTEMPTS; n++) {
      const taskId = attemptTaskId(buildId, n);
      const rec = await read(taskId);
      if (rec === undefined) break;
      if (!over(rec)) running.push(taskId);
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
    return running;
  }
}
