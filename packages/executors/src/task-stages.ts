/**
 * Where a task's time goes on its way through a runner, stage by stage (the runner's
 * CP_TASK_STAGES_FILE; off by default). Each stage is a moment on the monotonic clock
 * (performance.now(), ms); when the task's end is recorded its marks leave as one JSON object
 * (`sink`), and are forgotten. The spawner's own moments (it read the request, posix_spawn
 * returned, it reaped the wrapper) come on the same clock, with the CPU the task's processes
 * used (the wrapper and everything it waited for).
 *
 *   const stages = new TaskStages((line) => out.write(`${JSON.stringify(line)}\n`));
 *   stages.mark(taskId, 'intake'); ... stages.done(taskId);
 */
export type Stage =
  /** The runner's consumer handed it the task message (decoded). */
  | 'intake'
  /** Admission checks passed (profile, cwd within the workspace roots). */
  | 'admitted'
  /** Its first record (created, and submitted and running when a lane was free) is written. */
  | 'recorded'
  /** A lane was taken for it (at its first record, or when one freed). */
  | 'lane'
  /** Recorded running (its first record when a lane was free; otherwise a write of its own). */
  | 'running'
  /** Its start request left for the spawner (one write per event-loop turn). */
  | 'sent'
  /** The spawner read the request. */
  | 'spawner-read'
  /** posix_spawn of its wrapper returned in the spawner. */
  | 'spawned'
  /** The spawner reaped the wrapper (the task's processes ended). */
  | 'reaped'
  /** Its pid reached the runner. */
  | 'pid'
  /** Its end reached the runner. */
  | 'exit'
  /** Its lane went to the next task. */
  | 'lane-free'
  /** What to add to its end record is known (the runner: outputs left empty). */
  | 'end-prepared'
  /** Its end is recorded. */
  | 'end-recorded';

/** One task's marks, and the CPU ms its processes used when the spawner knows. */
export type StageLine = { readonly taskId: string; readonly cpuMs?: number } & Partial<
  Record<Stage, number>
>;

export class TaskStages {
  readonly #sink: (line: StageLine) => void;
  readonly #open = new Map<string, Partial<Record<Stage, number>> & { cpuMs?: number }>();
  /** performance.now() minus the monotonic clock in ms: converts the spawner's times. */
  readonly #offset = performance.now() - Number(process.hrtime.bigint()) / 1e6;

  constructor(sink: (line: StageLine) => void) {
    this.#sink = sink;
  }

  /** Marks `stage` now (or at `at`); the first mark of a stage stands. */
  mark(taskId: string, stage: Stage, at = performance.now()): void {
    let marks = this.#open.get(taskId);
    if (!marks) {
      marks = {};
      this.#open.set(taskId, marks);
    }
    marks[stage] ??= at;
  }

  /** The spawner's moments (CLOCK_MONOTONIC, ns) and the task's CPU (µs). */
  spawner(taskId: string, readNs: number, spawnedNs: number, reapedNs: number, cpuUs: number) {
    const ms = (ns: number) => ns / 1e6 + this.#offset;
    this.mark(taskId, 'spawner-read', ms(readNs));
    this.mark(taskId, 'spawned', ms(spawnedNs));
    this.mark(taskId, 'reaped', ms(reapedNs));
    const marks = this.#open.get(taskId);
    if (marks) marks.cpuMs = cpuUs / 1000;
  }

  /** Forgets a task that will not be run here (its record was another runner's). */
  drop(taskId: string): void {
    this.#open.delete(taskId);
  }

  /** The task's end is recorded: its marks go to the sink. */
  done(taskId: string): void {
    this.mark(taskId, 'end-recorded');
    const marks = this.#open.get(taskId);
    this.#open.delete(taskId);
    if (marks) this.#sink({ taskId, ...marks });
  }
}
