import type { Bus, Logger, TypedKv } from '@computepods/bus';
import { isTerminal } from '@computepods/executors';
import { subjects, type TaskRecord } from '@computepods/protocol';

/** The runner id a pilot worker records its tasks under (set in its job script). */
export function pilotRunnerId(resource: string, jobId: string): string {
  return `pilot-${resource}-${jobId}`;
}

/**
 * Takes over the tasks of a pilot whose SLURM job has ended: its worker is gone, so a task it
 * recorded and did not end will never end by itself. Each is recorded failed (revision-checked:
 * a record someone else wrote meanwhile is left alone) with a reason naming the pilot job, then
 * published like any transition. It is not run again: it may have run partly, and a task
 * must never complete twice. The task messages the pilot held, recorded or not, are then
 * handed out again at once by pilot-release.ts (a recorded one is acknowledged without a run).
 */
export async function failTasksOfEndedPilot(options: {
  readonly bus: Bus;
  readonly kv: TypedKv<typeof TaskRecord>;
  readonly resource: string;
  /** The queue the pilot served (its runner id names it). */
  readonly queue: string;
  readonly jobId: string;
  /** The job's last state (scontrol), or 'purged' when SLURM no longer knows it. */
  readonly jobState: string;
  readonly log: Logger;
}): Promise<string[]> {
  const { bus, kv, resource, queue, jobId, jobState, log } = options;
  const runner = pilotRunnerId(queue, jobId);
  const failed: string[] = [];
  for (const [id, { value, revision }] of await kv.entries()) {
    if (value.runner !== runner || value.task.resource !== resource || isTerminal(value.state))
      continue;
    const time = new Date().toISOString();
    const reason =
      `pilot job ${jobId} (runner ${runner}) ended (${jobState}) while this task was ` +
      `${value.state}; it is reported failed rather than run again, since it may have partly run`;
    const rec: TaskRecord = {
      ...value,
      state: 'failed',
      exitCode: null,
      reason,
      history: [...value.history, { state: 'failed', time }],
      updated: time,
    };
    try {
      await kv.update(id, rec, revision);
    } catch (err) {
      log.info({ taskId: id, err: String(err) }, 'task of an ended pilot changed meanwhile');
      continue;
    }
    failed.push(id);
    log.warn({ taskId: id, jobId, previous: value.state }, 'task of an ended pilot failed');
    await bus.publish('task.state', subjects.taskState(bus.project), {
      taskId: id,
      ...(value.task.buildId ? { buildId: value.task.buildId } : {}),
      resource,
      state: 'failed',
      previous: value.state,
      exitCode: null,
      reason,
    });
  }
  return failed;
}
