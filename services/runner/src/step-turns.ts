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
 *
 * A group's task (TaskSubmitted.step.also: one task running several steps' commands) is a task
 * of each of its steps: it supersedes the earlier task of any of them, and a later task of any
 * of them supersedes it.
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
   * Runs `take` (the task's submission to the executor) once no earlier task of any of the
   * task's steps runs here: an earlier one still queued or running is killed first, as
   * superseded.
   */
  async take<T>(task: TaskSubmitted, take: () => Promise<T>): Promise<T> {
    const keys = stepKeys(task);
    if (keys.length === 0) return take();
    return inTurns(
      this.#turns,
      keys.map((k) => k.key),
      () => this.#take(keys, task, take),
    );
  }

  async #take<T>(
    keys: readonly StepKey[],
    task: TaskSubmitted,
    take: () => Promise<T>,
  ): Promise<T> {
    // One kill and one wait per earlier task, however many of the task's steps it shares.
    const priors = new Map<string, string>();
    for (const { key, step } of keys) {
      const prior = this.#last.get(key);
      if (prior !== undefined && prior !== task.taskId && !priors.has(prior))
        priors.set(prior, step);
    }
    // Waited for side by side: each at most STOP_WAIT_MS, not their sum.
    await Promise.all([...priors].map(([prior, step]) => this.#supersede(prior, task, step)));
    const taken = await take();
    this.#note(task, task.taskId);
    return taken;
  }

  /** Kills `prior`, the earlier task of `step` (one `task` runs too), and waits for it to stop. */
  async #supersede(prior: string, task: TaskSubmitted, step: string): Promise<void> {
    const rec = this.tasks.get(prior);
    if (!rec) return;
    const reason = supersededReason(task.taskId, step);
    this.log.warn(
      { taskId: prior, by: task.taskId, step, state: rec.state },
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

  /** `taskId` is the last task of each of its steps here until it has settled. */
  #note(task: TaskSubmitted, taskId: string): void {
    const keys = stepKeys(task);
    if (keys.length === 0 || !this.tasks.get(taskId)) return;
    for (const { key } of keys) this.#last.set(key, taskId);
    void settledOf(this.tasks, taskId).then(() => {
      for (const { key } of keys) if (this.#last.get(key) === taskId) this.#last.delete(key);
    });
  }
}

/**
 * Runs `fn` in its turn on every key, taken one after another in the order given while holding
 * the earlier ones. Callers pass keys sorted: two tasks sharing keys then queue on them in the
 * same order, and neither can hold one the other waits on while waiting on one it holds.
 */
function inTurns<T>(
  chains: Map<string, Promise<unknown>>,
  keys: readonly string[],
  fn: () => Promise<T>,
): Promise<T> {
  const [first, ...rest] = keys;
  if (first === undefined) return fn();
  return inTurn(chains, first, () => inTurns(chains, rest, fn));
}

/** Resolves once the task has settled, or at once when the executor no longer has it. */
function settledOf(tasks: StepTasks, taskId: string): Promise<unknown> {
  return Promise.resolve()
    .then(() => tasks.settled(taskId))
    .catch(() => undefined);
}

/** A step of a task, as StepTurns keys it: with the chef that submitted the task. */
interface StepKey {
  key: string;
  step: string;
}

/** Each step the task runs (a group's every step), once each, sorted by key (see inTurns). */
function stepKeys(task: TaskSubmitted): StepKey[] {
  if (!task.step) return [];
  const chef = task.step.chef ?? '';
  const steps = new Set([task.step.id, ...(task.step.also ?? [])]);
  return [...steps]
    .map((step) => ({ key: `${chef}\u0000${step}`, step }))
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}
