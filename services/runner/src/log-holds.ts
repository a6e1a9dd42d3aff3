import type { TaskLogStream, TaskRecord } from '@computepods/protocol';

const BOTH: readonly TaskLogStream[] = ['stdout', 'stderr'];

/**
 * The tasks whose logs the task-log publisher has not settled: a log is open from the moment it
 * is followed until its end marker is acknowledged, the publisher gave up on it (and logged
 * why), or the end record says it is empty (no end marker needed). The runner hands these to its
 * executor (BackendTuning.unpublishedLogs): no sweep removes a task folder, job folder or Job
 * log copy the last piece of a log is still to be read from, whatever the keep time.
 */
export class LogHolds {
  readonly #held = new Map<string, { rec: TaskRecord; open: Set<TaskLogStream> }>();

  /** One of the task's logs is followed (or being finished); `rec` is its latest record. */
  open(rec: TaskRecord, stream: TaskLogStream): void {
    const id = rec.task.taskId;
    const held = this.#held.get(id);
    if (held) {
      held.rec = rec;
      held.open.add(stream);
    } else this.#held.set(id, { rec, open: new Set([stream]) });
  }

  /** Both logs stay open until a restarted runner settles them (the publisher is closing). */
  keep(rec: TaskRecord): void {
    for (const s of BOTH) this.open(rec, s);
  }

  /** That log is settled. */
  settle(taskId: string, stream: TaskLogStream): void {
    const held = this.#held.get(taskId);
    held?.open.delete(stream);
    if (held?.open.size === 0) this.#held.delete(taskId);
  }

  /** The records of the tasks with a log still open. */
  records(): TaskRecord[] {
    return [...this.#held.values()].map((h) => h.rec);
  }
}
