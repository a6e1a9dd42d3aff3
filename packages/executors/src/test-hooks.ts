import {
  type LocalResource,
  parseResource,
  type TaskRecord,
  type TaskState,
  type TaskStateChanged,
} from '@computepods/protocol';
import type { BackendContext } from './backend.js';
import { Executor, type ExecutorHooks, type ExecutorOptions } from './executor.js';
import { LocalBackend, type LocalBackendOptions } from './local-backend.js';

/**
 * Test support: a local resource whose job and task folders are under `dir`, running
 * `parallel` tasks at once and polling without delay, with the system's python3.
 */
export function testLocalResource(
  dir: string,
  parallel = 2,
  python: LocalResource['tasks_python_config'] = {
    default_version: '3.12',
    versions: { '3.12': '/usr/bin/python3' },
  },
): LocalResource {
  return parseResource({
    type: 'local',
    name: 'Local resource',
    jobs_local_dir: `${dir}/jobs`,
    jobs_runner_config: { parallel_tasks_per_job: parallel },
    jobs_poll_interval: 0,
    tasks_local_dir: `${dir}/tasks`,
    tasks_python_config: python,
    tasks_pixi_config: {},
  }) as LocalResource;
}

/**
 * Test support: keeps records in memory and the order of record() and publish() calls, so a
 * test can check that every transition was recorded before it was published.
 */
export class RecordingHooks implements ExecutorHooks {
  readonly records = new Map<string, TaskRecord>();
  readonly calls: {
    kind: 'record' | 'publish';
    taskId: string;
    state: TaskState;
    /** record: the states in the record's history (one write may record several). */
    history?: TaskState[];
  }[] = [];
  readonly events: TaskStateChanged[] = [];
  failRecords = false;
  /** Messages the executor and its backend logged, in order. */
  readonly logs: string[] = [];

  log(_level: 'info' | 'warn' | 'error', msg: string): void {
    this.logs.push(msg);
  }

  async record(rec: TaskRecord): Promise<void> {
    if (this.failRecords)
      throw Object.assign(new Error('KV unavailable (test)'), { retryable: false });
    this.calls.push({
      kind: 'record',
      taskId: rec.task.taskId,
      state: rec.state,
      history: rec.history.map((h) => h.state),
    });
    this.records.set(rec.task.taskId, structuredClone(rec));
  }

  publish(event: TaskStateChanged): void {
    this.calls.push({ kind: 'publish', taskId: event.taskId, state: event.state });
    this.events.push(event);
  }

  /** Published states of one task, in order. */
  states(taskId: string): TaskState[] {
    return this.events.filter((e) => e.taskId === taskId).map((e) => e.state);
  }

  /**
   * Every publish of a task's n-th state was preceded by a record whose history holds that
   * state n-th (a record written once may carry several transitions).
   */
  recordedBeforePublished(): boolean {
    const recorded = new Map<string, TaskState[]>();
    const published = new Map<string, number>();
    for (const c of this.calls) {
      if (c.kind === 'record') {
        recorded.set(c.taskId, c.history ?? [c.state]);
        continue;
      }
      const n = published.get(c.taskId) ?? 0;
      published.set(c.taskId, n + 1);
      if (recorded.get(c.taskId)?.[n] !== c.state) return false;
    }
    return true;
  }
}

/**
 * Test support: an executor of local tasks ("local-resource", runner "test" unless `executor`
 * says otherwise) on a LocalBackend made with `options`, its hooks a RecordingHooks.
 */
export function localExecutor(
  options: LocalBackendOptions,
  executor: Pick<ExecutorOptions, 'runner' | 'runnerInstance'> = {},
) {
  const hooks = new RecordingHooks();
  const ex = new Executor({
    resource: 'local-resource',
    backend: (ctx: BackendContext) => new LocalBackend(options, ctx),
    hooks,
    runner: 'test',
    ...executor,
  });
  return { hooks, ex, backend: ex.backend };
}
