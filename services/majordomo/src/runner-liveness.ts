import type { Bus, TypedKv } from '@computepods/bus';
import { streams, subjects, type TaskRecord } from '@computepods/protocol';
import { OpenTasks } from './open-tasks.js';
import { releasePending } from './release-pending.js';
import { type Replica, watchReplicas } from './replica-census.js';
import { queueOf } from './task-logs.js';

/**
 * A task the dead runner never handed to anything that could still be running it, or whose
 * start the runner that takes it again can find: queued again once (attempt 2).
 *
 * A local task waits for a free slot as `submitted`; as a slot frees the runner may start it
 * before its `running` record is written (the early start: until its pid is reported, up to the
 * spawner's pid hold, ~100 ms). So a `submitted` local task of a dead runner may be running.
 * Queued again, it names that runner (`handle: { kind: 'requeued', runner }`), and the runner
 * that takes it looks before it runs anything (executors' LocalBackend.earlierStart): the dead
 * runner's start claimed the task folder for that life of the record (task-life.ts), so it is
 * followed there and recorded, never started again; no claim, the folder is claimed for that
 * life first, so that no late start of it can follow, and the task runs; the dead runner's task
 * folders not where this runner can see them, it cannot be told and the task is failed, naming
 * the dead runner. A SLURM or Kubernetes task is `submitted` once its job exists, and then has
 * a job id or handle.
 */
function neverStarted(rec: TaskRecord): boolean {
  const state = rec.state === 'paused' ? rec.pausedFrom : rec.state;
  if (state === 'created') return true;
  return state === 'submitted' && !rec.jobId && rec.pid === undefined && !rec.handle;
}

/**
 * The $SRV ids of the runner processes whose jobs folder marks may tell of a start of `rec`'s
 * task (at most 16): the one its record names (it took the task), then those of its runner id
 * last heard. The record's alone still names it after MajorDomo restarted and heard none.
 */
function processesOf(rec: TaskRecord, heard: readonly string[] | undefined): string[] {
  const ids = new Set(rec.runnerInstance ? [rec.runnerInstance] : []);
  for (const id of (heard ?? []).slice(-16)) ids.add(id);
  return [...ids].slice(0, 16);
}

/**
 * Runner liveness. Every runner answers `$SRV.PING.runner` with its CP_RUNNER_ID and queue in
 * its metadata (runner.ts); a runner id that nothing has answered for CP_RUNNER_DEAD_S (since it
 * was last heard, or since MajorDomo started for one never heard) is dead, and each of its task
 * records that has not ended is resolved, with a revision-checked update:
 *
 * - a task that never started (see neverStarted), not queued again before, whose queue a live
 *   runner serves, is queued again once: its record goes back to `created` without a runner
 *   (attempt 2), naming the dead runner in its handle, and its task message is published again,
 *   for the first live runner to take it (which first looks for a start of it: neverStarted);
 * - any other is failed: "runner X stopped answering at T; task not completed".
 *
 * Each sweep reads only the records written since the one before (open-tasks.ts): the bucket
 * keeps every record for CP_RECORD_MAX_AGE_S.
 *
 * The update is the fence: a dead runner that comes back writes its records with the revision it
 * last wrote (kv-records.ts), which no longer matches, so its late result is refused and it does
 * not run a task queued again. The durable of the dead runner's queue has its pending messages
 * delivered again at once (release-pending.ts), not after the ack wait.
 */
export function watchRunnerLiveness(
  bus: Bus,
  tasks: TypedKv<typeof TaskRecord>,
  graceMs: number,
): () => void {
  const p = bus.project;
  const since = { wall: new Date(), mono: performance.now() };
  /** The runner instances heard within the grace (by $SRV id). */
  let alive = new Map<string, Replica>();
  /** Runner id -> when it was last heard (wall clock for the reason, monotonic for ages). */
  const lastHeard = new Map<string, { wall: Date; mono: number }>();
  /** Runner id -> the $SRV ids of its processes heard in the last round it was heard in. */
  const instances = new Map<string, string[]>();
  /** Runner ids taken for dead (their last instance gone), until heard again. */
  const dead = new Set<string>();
  let sweeping = false;
  let lastSweep = 0;
  /** The records not ended: the bucket read once, then its changes at each sweep. */
  const open = new OpenTasks(tasks);

  const sweep = async () => {
    if (sweeping) return;
    sweeping = true;
    lastSweep = performance.now();
    try {
      const runners = new Set([...alive.values()].map((r) => r.metadata.runner));
      const queues = new Set([...alive.values()].map((r) => r.metadata.queue));
      const startedLongAgo = performance.now() - since.mono >= graceMs;
      for (const [id, { value: rec, revision }] of await open.refresh()) {
        if (!rec.runner) {
          await republish(rec);
          continue;
        }
        if (runners.has(rec.runner)) continue;
        // Never heard since this MajorDomo started: it gets a full grace first.
        const heard = lastHeard.get(rec.runner);
        if (!dead.has(rec.runner)) {
          if (!heard && !startedLongAgo) continue;
          if (heard && performance.now() - heard.mono < graceMs) continue;
        }
        const at = (heard?.wall ?? since.wall).toISOString();
        await resolve(id, rec, revision, at, queues);
      }
    } finally {
      sweeping = false;
    }
  };

  const resolve = async (
    id: string,
    rec: TaskRecord,
    revision: number,
    at: string,
    queues: ReadonlySet<string | undefined>,
  ) => {
    const who = rec.runner ?? '';
    const time = new Date().toISOString();
    const queue = queueOf(rec);
    const named = processesOf(rec, instances.get(who));
    const again = neverStarted(rec) && (rec.task.attempt ?? 1) < 2 && queues.has(queue);
    const next: TaskRecord = again
      ? {
          task: { ...rec.task, attempt: 2 },
          state: 'created',
          queue,
          // Where the attempt before may have started it: see neverStarted.
          handle: {
            kind: 'requeued',
            runner: who,
            // Which of its processes' jobs folder marks may tell (executors' earlierStart).
            ...(named.length > 0 ? { instances: named } : {}),
          },
          reason: `runner ${who} stopped answering at ${at}; the task had not started and is queued again`,
          history: [...rec.history, { state: 'created', time }],
          updated: time,
        }
      : {
          ...rec,
          state: 'failed',
          exitCode: null,
          reason: `runner ${who} stopped answering at ${at}; task not completed`,
          history: [...rec.history, { state: 'failed', time }],
          updated: time,
        };
    try {
      await tasks.update(id, next, revision);
    } catch (err) {
      // Written since it was read: by its runner (alive after all) or another MajorDomo; or
      // gone. A write comes back with the next sweep's changes.
      open.forget(id);
      bus.logger.debug({ taskId: id, err: (err as Error).message }, 'task record changed; left');
      return;
    }
    bus.logger.warn(
      { taskId: id, runner: who, lastHeard: at, state: rec.state, queuedAgain: again },
      again ? 'runner stopped answering; its task is queued again' : next.reason,
    );
    if (again) await republish(next);
  };

  /** A task queued again (no runner yet) gets its message; the same message id each time. */
  const republish = async (rec: TaskRecord) => {
    if (rec.state !== 'created' || (rec.task.attempt ?? 1) < 2) return;
    await bus
      .publish('task.submitted', subjects.tasks(p, queueOf(rec)), rec.task, {
        msgId: `${rec.task.taskId}.attempt-2`,
        retryForMs: 5_000,
      })
      .catch((err: Error) =>
        bus.logger.warn(
          { taskId: rec.task.taskId, err: err.message },
          'could not queue a task again; trying at the next sweep',
        ),
      );
  };

  const census = watchReplicas(bus, {
    service: 'runner',
    graceMs,
    onRound: async (now) => {
      alive = new Map();
      const heardNow = new Map<string, string[]>();
      for (const r of now.values()) {
        const id = r.metadata.runner;
        if (!id) continue;
        alive.set(r.id, r);
        heardNow.set(id, [...(heardNow.get(id) ?? []), r.id]);
        dead.delete(id);
        lastHeard.set(id, { wall: r.heardAt, mono: performance.now() });
      }
      for (const [id, ids] of heardNow) instances.set(id, ids);
      // Also for runners that died while MajorDomo was away (never heard since): a sweep once a
      // grace, besides the one at each death.
      if (performance.now() - lastSweep >= Math.max(graceMs, 10_000)) await sweep();
    },
    onGone: async (r) => {
      const id = r.metadata.runner;
      const queue = r.metadata.queue;
      if (!id || !queue) return;
      dead.add(id);
      bus.logger.warn(
        { runner: id, queue, lastHeard: r.heardAt.toISOString() },
        'runner stopped answering',
      );
      // What it had pulled and not recorded goes to a live runner now.
      await releasePending(bus, streams.tasks(p), `runner-${queue}`).catch((err: Error) =>
        bus.logger.warn({ queue, err: err.message }, 'could not release its pulled tasks'),
      );
      lastSweep = 0; // at the end of this round, with the live runners just heard
    },
  });
  return () => census.stop();
}
