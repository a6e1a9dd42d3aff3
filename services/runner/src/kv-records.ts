import { isWrongLastSequence, type TypedKv } from '@computepods/bus';
import type { RetryPolicy } from '@computepods/executors';
import type { TaskRecord } from '@computepods/protocol';
import { z } from 'zod';
import { RecordConflictError } from './errors.js';

/**
 * A record on its way to KV, stored with no parse of its own: the executor builds every record
 * it writes from typed parts (Executor's #created and #step), its task parsed once as it came in
 * (Executor.submit; an adopted or requeued record's as it was read from KV), the backends'
 * patches from what they parsed (the spawner's lines, SLURM's answers). Every reader parses
 * what it reads (the chef's record watch, MajorDomo, cpctrl, a restarted runner's adoption), as
 * MajorDomo's artefact records and build traces are written. The parse was the runner's
 * largest zod cost, two a task: every field again, the task's history and handle included.
 */
const RecordOut = z.custom<TaskRecord>();

/**
 * How a runner's executor tries a record write that failed: for about 25 s (100 ms, doubling to
 * 2 s, 16 tries). A record goes to a KV bucket: on a NATS cluster whose node leading it dies,
 * writes fail until the others elect a new leader (seconds; more on a loaded machine). The one
 * retry of a record write (KvRecords.write writes once); a conflict is not retried.
 */
export const RECORD_RETRY: RetryPolicy = { attempts: 16, baseMs: 100, maxMs: 2_000 };

/**
 * Task records in KV with revision checks: a task's first record is created (it fails if the
 * key exists), every later one updates the revision this runner last wrote. A failed check
 * means someone else wrote the record: not retryable, the transition is not acted on.
 */
export class KvRecords {
  readonly #kv: TypedKv<typeof RecordOut>;
  readonly #revisions = new Map<string, number>();
  /** Ended tasks in the order they ended, with when their revision may go. */
  readonly #ended: { id: string; forgetAt: number }[] = [];
  #endedHead = 0;

  readonly #forgetEndedMs: number;

  /** `forgetEndedMs`: how long an ended task's revision is kept for a late update (10 min). */
  constructor(kv: TypedKv<typeof TaskRecord>, forgetEndedMs = 10 * 60_000) {
    this.#kv = kv.withSchema(RecordOut);
    this.#forgetEndedMs = forgetEndedMs;
  }

  /** Remembers the revision of a record read from KV (adopted after a restart). */
  known(taskId: string, revision: number): void {
    this.#revisions.set(taskId, revision);
  }

  async write(rec: TaskRecord): Promise<void> {
    const id = rec.task.taskId;
    const rev = this.#revisions.get(id);
    try {
      const next =
        rev === undefined ? await this.#kv.create(id, rec) : await this.#kv.update(id, rec, rev);
      this.#revisions.set(id, next);
    } catch (err) {
      if (isWrongLastSequence(err)) throw new RecordConflictError(id, rev, { cause: err });
      throw err;
    }
    if (rec.state === 'finished' || rec.state === 'failed' || rec.state === 'killed') {
      // Ended tasks may still get a late update (fetched logs); then their revision can go.
      // Forgotten as later writes come, oldest first: no timer per task (a no-op task a
      // millisecond would keep 600,000 of them).
      this.#ended.push({ id, forgetAt: performance.now() + this.#forgetEndedMs });
    }
    this.#forget(performance.now());
  }

  /** Revisions held: those of ended tasks go at the first write after they are old enough. */
  get size(): number {
    return this.#revisions.size;
  }

  #forget(now: number): void {
    for (let e = this.#ended[this.#endedHead]; e; e = this.#ended[this.#endedHead]) {
      if (e.forgetAt > now) break;
      this.#endedHead++;
      this.#revisions.delete(e.id);
    }
    if (this.#endedHead > 1024 && this.#endedHead * 2 > this.#ended.length) {
      this.#ended.splice(0, this.#endedHead);
      this.#endedHead = 0;
    }
  }
}
