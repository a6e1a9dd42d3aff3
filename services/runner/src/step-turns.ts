import type { Logger } from '@computepods/bus';
import { inTurn } from '@computepods/executors';
import { supersededReason, type TaskRecord, type TaskSubmitted } from '@computepods/protocol';

/** What StepTurns needs of the executor. */
export interface StepTasks {
  get(taskId: string): TaskRecord | undefined;
  kill(taskId: string, reason: string): Promise<TaskRecord>;
  settled(taskId: string): Promise<TaskRecord>;
}

/** How long a superseded task may take to stop before the next one runs all the same. */
const STOP_WAIT_MS = 60_000;

/**
 * One task of a graph step at a time on this runner (TaskSubmitted.step, with its chef): a task
 * of a step whose earlier task is still here, queued or running, kills that one and is handed to
 * the executor once nothing of it runs. A chef keeps to one build of a step at a time in memory
 * (services/chef/src/cancel.ts), and MajorDomo asks for a step's next build only once it gave the
 * last one up; but a chef killed -9 forgets the task it submitted, which runs on here. Its
 * restarted self, asked for the step's next build, submitted that one beside it: the newer task
 * ended first and was reported, then the older wrote its bytes over the output (fresh-clone CI
 * run 132, test/chaos; test/src/step-after-chef-kill.test.ts). The newest submission wins, as
 * the newest request does at the chef: the chef of the one killed reports it cancelled, and
 * MajorDomo plans again. Several runners sharing one queue are not covered: each sees its own.
 */
export class StepTurns {
  /** The last task accepted of each step, until it has ended and nothing of it runs. */
  readonly #last = new Map<string, string>();
  /** Per step: the turn of the last task taken, so that two of one step are taken in order. */
  readonly #turns = new Map<string, Promise<unknown>>();

  constructor(
    private readonly tasks: StepTasks,
    private readonly log: Logger,
  ) {}

  /** After a restart: the adopted tasks still here, each step's last to be created kept. */
  adopt(records: readonly TaskRecord[]): void {
    const byCreation = [...records].sort((a, b) =>
      (a.history[0]?.time ?? '') < (b.history[0]?.time ?? '') ? -1 : 1,
    );
    for (const rec of byCreation) this.#note(rec.task, rec.task.taskId);
  }

  /**
   * Runs `take` (the task's submission to the executor) once no earlier task of the task's step
   * runs here: an earlier one still queued or running is killed first, as superseded.
   */
  async take<T>(task: TaskSubmitted, take: () => Promise<T>): Promise<T> {
    const key = stepKey(task);
    if (key === undefined) return take();
    return inTurn(this.#turns, key, () => this.#take(key, task, take));
  }

  async #take<T>(key: string, task: TaskSubmitted, take: () => Promise<T>): Promise<T> {
    const prior = this.#last.get(key);
    if (prior !== undefined && prior !== task.taskId) await this.#supersede(prior, task);
    const taken = await take();
    this.#note(task, task.taskId);
    return taken;
  }

  async #supersede(prior: string, task: TaskSubmitted): Promise<void> {
    const rec = this.tasks.get(prior);
    if (!rec) return;
    const reason = supersededReason(task.taskId, task.step?.id ?? '');
    this.log.warn(
      { taskId: prior, by: task.taskId, step: task.step?.id, state: rec.state },
      'a newer task of the same step came: the older one is killed before it runs',
    );
    await this.tasks.kill(prior, reason).catch(() => undefined); // ended meanwhile: nothing to kill
    let timer: NodeJS.Timeout | undefined;
    const settled = await Promise.race([
      settledOf(this.tasks, prior).then(() => true),
      new Promise<false>((resolve) => {
        timer = setTimeout(() => resolve(false), STOP_WAIT_MS);
      }),
    ]);
    clearTimeout(timer);
    if (!settled)
      this.log.error(
        { taskId: prior, by: task.taskId, waitedMs: STOP_WAIT_MS },
        'a superseded task did not stop: the newer one runs beside it',
      );
  }

  /** `taskId` is the step's last task here until it has settled. */
  #note(task: TaskSubmitted, taskId: string): void {
    const key = stepKey(task);
    if (key === undefined || !this.tasks.get(taskId)) return;
    this.#last.set(key, taskId);
    void settledOf(this.tasks, taskId).then(() => {
      if (this.#last.get(key) === taskId) this.#last.delete(key);
    });
  }
}

/** Resolves once the task has settled, or at once when the executor no longer has it. */
function settledOf(tasks: StepTasks, taskId: string): Promise<unknown> {
  return Promise.resolve()
    .then(() => tasks.settled(taskId))
    .catch(() => undefined);
}

function stepKey(task: TaskSubmitted): string | undefined {
  return task.step ? `${task.step.chef ?? ''}\u0000${task.step.id}` : undefined;
}
