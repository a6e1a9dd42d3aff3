import { IllegalTransitionError, type LaneWait } from '@computepods/executors';
import type { TaskRecord } from '@computepods/protocol';
import { IntakeStoppedError } from './errors.js';

/** What ended a task's wait for a lane: the lane, or a request to kill or pause it. */
export type LaneOutcome =
  | { readonly kind: 'lane' }
  | {
      readonly kind: 'stop';
      readonly action: 'kill' | 'pause';
      /** Settles the request with the record written for it (or why it was not). */
      settle(rec: Promise<TaskRecord>): void;
    };

interface Held {
  /** Waiting for its lane, or holding it and being recorded. */
  phase: 'waiting' | 'recording';
  readonly lane: LaneWait;
  readonly end: (outcome: LaneOutcome | IntakeStoppedError) => void;
  /** Resolves when its message handler is done with it (done()). */
  readonly done: Promise<void>;
  readonly finish: () => void;
}

/**
 * The tasks a runner has pulled and keeps unrecorded, their messages unacknowledged, until a
 * lane is free (local resources): then the task is recorded created → running in one write and
 * spawned, and its message acknowledged. A task waiting here has no record: a kill or pause
 * asked for it meanwhile (control) is carried out by its message handler, which records it
 * killed or paused in one write; when the runner stops taking tasks (close), every waiting task
 * is given back to the queue. A kill -9 leaves the messages unacknowledged: the queue hands them
 * out again (reclaim.ts, or MajorDomo's release of a dead runner's pending messages).
 */
export class LaneWaits {
  readonly #held = new Map<string, Held>();
  #closed = false;

  get size(): number {
    return this.#held.size;
  }

  /** Resolves when the handler holding the task is done with it; undefined when none holds it. */
  done(taskId: string): Promise<void> | undefined {
    return this.#held.get(taskId)?.done;
  }

  /**
   * Waits for the task's lane (its LaneWait, from executor.lane): resolves with the lane, or with
   * the kill or pause asked meanwhile; rejects with IntakeStoppedError once the runner stops
   * taking tasks. The caller calls release(taskId) once it has acted on the outcome.
   */
  hold(taskId: string, lane: LaneWait): Promise<LaneOutcome> {
    let finish = () => {};
    const done = new Promise<void>((resolve) => {
      finish = resolve;
    });
    return new Promise<LaneOutcome>((resolve, reject) => {
      const held: Held = {
        phase: 'waiting',
        lane,
        done,
        finish,
        end: (outcome) => {
          if (held.phase !== 'waiting') return;
          held.phase = 'recording';
          if (outcome instanceof IntakeStoppedError) reject(outcome);
          else resolve(outcome);
        },
      };
      this.#held.set(taskId, held);
      if (this.#closed) {
        lane.cancel();
        held.end(new IntakeStoppedError(taskId));
        return;
      }
      lane.ready.then((ok) => held.end(ok ? { kind: 'lane' } : new IntakeStoppedError(taskId)));
    });
  }

  /** The task's handler is done with it (recorded, given back, or dropped). */
  release(taskId: string): void {
    const held = this.#held.get(taskId);
    if (!held) return;
    this.#held.delete(taskId);
    if (held.phase === 'waiting') held.lane.cancel();
    held.finish();
  }

  /**
   * A control request for a task held here: undefined when none is; else resolves with the
   * record written for it (killed or paused while it waited), or with undefined when it was
   * being recorded already (ask the executor then: it has the task, or nobody here does).
   * Resume of a waiting task is refused as for any task that is not paused.
   */
  control(
    taskId: string,
    action: 'kill' | 'pause' | 'resume',
  ): Promise<TaskRecord | undefined> | undefined {
    const held = this.#held.get(taskId);
    if (!held) return undefined;
    if (held.phase === 'recording') return held.done.then(() => undefined);
    if (action === 'resume')
      return Promise.reject(
        new IllegalTransitionError(
          taskId,
          'created',
          'resumed',
          'only a paused task can be resumed; this one waits for a lane',
        ),
      );
    held.lane.cancel();
    return new Promise<TaskRecord>((resolve, reject) =>
      held.end({ kind: 'stop', action, settle: (rec) => rec.then(resolve, reject) }),
    );
  }

  /** Takes no more tasks: every task waiting for a lane goes back to the queue. */
  close(): void {
    this.#closed = true;
    for (const [taskId, held] of this.#held) {
      if (held.phase !== 'waiting') continue;
      held.lane.cancel();
      held.end(new IntakeStoppedError(taskId));
    }
  }
}
