import { join } from 'node:path';
import { type Bus, ensureProjectStreams, type Logger, type TypedKv } from '@computepods/bus';
import {
  buckets,
  streams,
  subjects,
  TaskRecord,
  type TaskState,
  type TaskSubmitted,
  TERMINAL_STATES,
} from '@computepods/protocol';
import type { RunnerConfig } from './config.js';
import { killGroup, type LocalRun, runPaths, startLocal, waitExit } from './local-process.js';

type Record_ = TaskRecord;

/**
 * Runs tasks from the resource's work queue. Every transition is written to the task's KV
 * record before it is acted on, then published on the task-state subject. A redelivered task
 * whose record is terminal is not run again; one that was running is collected from its exit
 * file instead of being started twice.
 */
export async function startRunner(bus: Bus, cfg: RunnerConfig): Promise<() => Promise<void>> {
  const p = cfg.project;
  await ensureProjectStreams(bus, p);
  const records = await bus.kv(buckets.tasks(p), TaskRecord, { history: 5 });

  const consumer = await bus.consume({
    stream: streams.tasks(p),
    durable: `runner-${cfg.resource}`,
    filterSubject: subjects.tasks(p, cfg.resource),
    accept: ['task.submitted'],
    concurrency: cfg.parallel,
    maxDeliver: 10,
    handler: async (msg, ctx) => runTask(bus, records, cfg, msg.body, msg.cid, ctx.logger),
  });
  bus.logger.info({ resource: cfg.resource, parallel: cfg.parallel }, 'runner ready');
  return async () => {
    await consumer.stop();
    await bus.close();
  };
}

async function runTask(
  bus: Bus,
  records: TypedKv<typeof TaskRecord>,
  cfg: RunnerConfig,
  task: TaskSubmitted,
  cid: string,
  logger: Logger,
): Promise<void> {
  const existing = (await records.get(task.taskId))?.value;
  if (existing && TERMINAL_STATES.includes(existing.state)) {
    logger.info(
      { taskId: task.taskId, state: existing.state },
      'task already done; not running it again',
    );
    return;
  }
  const dir = join(cfg.stateDir, 'tasks', task.taskId);
  let rec: Record_ = existing ?? {
    task,
    state: 'created',
    runner: cfg.runnerId,
    history: [{ state: 'created', time: new Date().toISOString() }],
    updated: new Date().toISOString(),
  };
  const move = async (state: TaskState, extra: Partial<Record_> = {}) => {
    const time = new Date().toISOString();
    rec = { ...rec, ...extra, state, updated: time, history: [...rec.history, { state, time }] };
    await records.put(task.taskId, rec);
    await bus.publish(
      'task.state',
      subjects.taskState(cfg.project),
      {
        taskId: task.taskId,
        resource: cfg.resource,
        state,
        ...(task.buildId ? { buildId: task.buildId } : {}),
        ...(rec.exitCode !== undefined ? { exitCode: rec.exitCode } : {}),
        ...(rec.reason ? { reason: rec.reason } : {}),
        ...(rec.stdoutPath ? { stdoutPath: rec.stdoutPath, stderrPath: rec.stderrPath } : {}),
      },
      { cid },
    );
  };

  let code: number | 'timeout' | undefined;
  if (existing?.state === 'running' && existing.pid !== undefined) {
    logger.info(
      { taskId: task.taskId, pid: existing.pid },
      'recovering a task started before a restart',
    );
    code = await waitExit({ pid: existing.pid, exitPath: runPaths(dir).exitPath }, task.timeoutMs);
  } else {
    if (!existing) await records.put(task.taskId, rec);
    await move('submitted', { runner: cfg.runnerId });
    let run: LocalRun;
    try {
      run = startLocal(dir, task.command, task.cwd, task.env);
    } catch (err) {
      await move('failed', { reason: (err as Error).message, exitCode: null });
      return;
    }
    await move('running', { pid: run.pid, stdoutPath: run.stdoutPath, stderrPath: run.stderrPath });
    code = await withTimeout(run.done!, task.timeoutMs);
    if (code === 'timeout') await killGroup(run.pid);
  }
  if (code === 'timeout')
    await move('failed', { reason: `timed out after ${task.timeoutMs} ms`, exitCode: null });
  else if (code === undefined)
    await move('killed', { reason: 'killed by a signal', exitCode: null });
  else if (code === 0) await move('finished', { exitCode: 0 });
  else await move('failed', { exitCode: code, reason: `exit code ${code}` });
}

async function withTimeout<T>(p: Promise<T>, ms: number | undefined): Promise<T | 'timeout'> {
  if (ms === undefined) return p;
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<'timeout'>((r) => {
    timer = setTimeout(() => r('timeout'), ms);
  });
  try {
    return await Promise.race([p, t]);
  } finally {
    clearTimeout(timer);
  }
}
