import { type Bus, killTask, type Logger, type TypedKv } from '@computepods/bus';
import { attemptTaskId, buckets, TaskRecord, TERMINAL_STATES } from '@computepods/protocol';

/** What MajorDomo reads of a task record here: its state. */
const TaskState = TaskRecord.pick({ state: true });

/** Attempts of one build looked at, at most (a build is tried a few times, never hundreds). */
const MAX_ATTEMPTS = 100;

/**
 * Kills the tasks of a build's attempts that are still recorded unfinished (attemptTaskId's
 * records, read in turn until one is missing), each through the runner holding it
 * (task.control), asking again until its record is terminal or `giveUpMs` passed. Returns the
 * task ids it had to stop. For a step's next build when no chef reported the end of the
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
    const stateOf = async (taskId: string) => (await tasks.get(taskId))?.value.state;
    const running: string[] = [];
    for (let n = 0; n < MAX_ATTEMPTS; n++) {
      const taskId = attemptTaskId(buildId, n);
      const state = await stateOf(taskId);
      if (state === undefined) break;
      if (!TERMINAL_STATES.includes(state)) running.push(taskId);
    }
    await Promise.all(
      running.map((taskId) => killTask(this.bus, stateOf, taskId, this.logger, giveUpMs)),
    );
    return running;
  }
}
