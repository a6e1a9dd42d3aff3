import { stat } from 'node:fs/promises';
import type { Bus, Logger, TypedKv } from '@computepods/bus';
import { attemptTaskId, TERMINAL_STATES } from '@computepods/protocol';
import { type InFlightBuilds, killTask } from './cancel.js';
import { confineLocal } from './confine.js';
import type { TaskView } from './task-view.js';
import { stoppedTask, type TaskFollower, type TaskWaitLimits } from './task-wait.js';

export interface LastAttempt {
  /** -1 when no attempt has a record. */
  readonly n: number;
  /** Its task id (attemptTaskId). */
  readonly id: string;
  readonly rec: TaskView | undefined;
  /**
   * The next attempt's record (attempt n + 1, after a recorded one), followed since before it
   * was read as none: the wait of that attempt's task, when it is the one submitted, needs no
   * read of its own. The caller stops it.
   */
  readonly next?: TaskFollower;
}

/**
 * The last attempt of a build with a record: attempt 0's (read already by the caller, or read
 * here), then each next one's until one has none. An attempt submitted whose record the runner
 * has not made yet reads as none: the next attempt's name is then its name, and the runner's
 * queue (message id = task id) and records take the two as one.
 */
export async function lastAttempt(
  tasks: TypedKv<typeof TaskView>,
  buildId: string,
  first: TaskView | undefined,
): Promise<LastAttempt> {
  if (!first) return { n: -1, id: attemptTaskId(buildId, 0), rec: undefined };
  let last: LastAttempt = { n: 0, id: attemptTaskId(buildId, 0), rec: first };
  for (;;) {
    const id = attemptTaskId(buildId, last.n + 1);
    // Followed, then read: the read that finds no record is the one a wait for it would make.
    const follower = await tasks.follow(id);
    const next = await follower.read.then(
      (e) => e?.value,
      (err: unknown) => {
        follower.stop();
        throw err;
      },
    );
    if (!next) return { ...last, next: follower };
    follower.stop();
    last = { n: last.n + 1, id, rec: next };
  }
}

/**
 * The task this request runs or joins. Its build's last attempt, when it is still on its way
 * (created, queued, running, paused): a redelivered or re-sent request, or a chef restarted
 * meanwhile, waits for that task and reports it; a second one would run beside it. Unless this
 * request came after a cancel of that attempt here (`afterCancel`: being killed), or the last
 * attempt was killed or failed (its inputs changed and changed back; MajorDomo restarted and
 * forgot the failure): then the next attempt runs, once the last one's processes are gone (an
 * end recorded `stopping`: at most TaskWaitLimits.stopMs; the chef that waited for them may have
 * died before it reported the build). Likewise when it finished and was `reported`
 * (a result for the build is recorded) and we are here all the same: its outputs are no longer
 * the ones it wrote (another build of the target wrote them since: the inputs changed and
 * changed back), or its result was not a success (an input moved while it ran); reusing it
 * reported the other build's bytes against these inputs. A finished attempt with no result
 * recorded is reused (its chef died before reporting it), unless an output was written after it
 * ended or is gone: another build of the target ran since. Requests of one hold share the pick
 * (InFlightBuilds.taskIdOnce): twin requests each made a task of their own, and both ran.
 */
export function taskIdFor(
  ctx: {
    readonly workspace: string;
    readonly inflight: InFlightBuilds;
    readonly tasks: TypedKv<typeof TaskView>;
    readonly taskWait: TaskWaitLimits;
    readonly bus: { readonly logger: Logger };
  },
  buildId: string,
  last: LastAttempt,
  signal: AbortSignal,
  reported: boolean,
  outputs: readonly string[],
): Promise<string> {
  return ctx.inflight.taskIdOnce(signal, async () => {
    const { n, rec } = last;
    if (!rec) return attemptTaskId(buildId, 0);
    const next = attemptTaskId(buildId, n + 1);
    if (ctx.inflight.afterCancel(signal)) return next;
    if (!TERMINAL_STATES.includes(rec.state)) return last.id;
    if (rec.state !== 'finished') {
      // Cancelled meanwhile: the caller ends the build, nothing is submitted.
      const gone = await stoppedTask(ctx.tasks, last.id, rec, ctx.taskWait.stopMs, signal).catch(
        (err: unknown) => {
          if (signal.aborted) return true;
          throw err;
        },
      );
      if (!gone)
        ctx.bus.logger.warn(
          { buildId, taskId: last.id, waitedMs: ctx.taskWait.stopMs },
          "the build's last attempt may still run (recorded stopping); its next attempt starts all the same",
        );
      return next;
    }
    if (reported || (await writtenSince(ctx.workspace, outputs, rec.updated))) return next;
    return last.id;
  });
}

/**
 * True when an output is missing or was written after `ended` (the task's finish, recorded by
 * the runner after the outputs were in place, on this pod): not the finished task's bytes. An
 * mtime is the kernel's coarse clock (up to a tick behind): a write within milliseconds of the
 * end is not seen. So a result is stored before it is published (build.ts finish): this check is
 * for a task whose chef died before it reported it, not for a request that follows a report.
 */
async function writtenSince(
  workspace: string,
  outputs: readonly string[],
  ended: string | undefined,
): Promise<boolean> {
  const at = ended ? Date.parse(ended) : Number.NaN;
  if (Number.isNaN(at)) return true;
  // The record's time has whole milliseconds: anything within its millisecond is not later.
  const endNs = BigInt(at) * 1_000_000n + 999_999n;
  for (const out of outputs) {
    const full = await confineLocal(workspace, out).catch(() => undefined);
    const st = full && (await stat(full, { bigint: true }).catch(() => undefined));
    if (!st || st.mtimeNs > endNs) return true;
  }
  return false;
}

/**
 * A build answered without a task of this request's (cancelled, refused) may still have one on
 * its way from a chef killed -9 (it left its task running): that attempt is killed, and the
 * answer waits until nothing of it runs (at most TaskWaitLimits.stopMs). MajorDomo sends the
 * step's next build once the answer says this one ended, and the orphan, left to run, wrote the
 * outputs after it; the runner stops an older task of a step itself (its StepTurns), but only its
 * own, not one on another runner of the queue (pilot workers). Not when a request of this chef
 * holds the build (`signal`: the asking request's hold): that attempt is that request's.
 */
export async function stopOrphanedAttempt(
  ctx: {
    readonly bus: Bus;
    readonly inflight: InFlightBuilds;
    readonly tasks: TypedKv<typeof TaskView>;
    readonly taskWait: TaskWaitLimits;
  },
  buildId: string,
  logger: Logger,
  signal?: AbortSignal,
  /** Attempt 0's record, when the caller read it already (`first` undefined: none). */
  known?: { readonly first: TaskView | undefined },
): Promise<void> {
  if (ctx.inflight.heldByOthers(buildId, signal)) return;
  const first = known ? known.first : (await ctx.tasks.get(attemptTaskId(buildId, 0)))?.value;
  if (!first) return;
  const last = await lastAttempt(ctx.tasks, buildId, first);
  last.next?.stop();
  let rec = last.rec;
  if (!rec) return;
  if (!TERMINAL_STATES.includes(rec.state)) {
    logger.warn(
      { buildId, taskId: last.id, state: rec.state },
      'a task of this build runs on with no chef following it (its chef died); killed before the build is answered',
    );
    await killTask(ctx.bus, ctx.tasks, last.id, logger);
    rec = (await ctx.tasks.get(last.id))?.value ?? rec;
  }
  const gone = await stoppedTask(ctx.tasks, last.id, rec, ctx.taskWait.stopMs, NEVER);
  if (!gone)
    logger.warn(
      { buildId, taskId: last.id, waitedMs: ctx.taskWait.stopMs },
      'a task of this build may still run (recorded stopping); the build is answered all the same',
    );
}

const NEVER = new AbortController().signal;
