import {
  type TaskRecord,
  type TaskState,
  type TaskStateChanged,
  TaskSubmitted,
} from '@computepods/protocol';
import type { Backend, BackendContext, LogStream, RecordPatch } from './backend.js';
import { IllegalTransitionError, RecordFailedError, TaskNotFoundError } from './errors.js';
import { inTurn } from './key-turns.js';
import { checkPausable, checkTransition, isTerminal } from './lifecycle.js';
import { type RetryPolicy, withRetry } from './retry.js';
import type { TaskStages } from './task-stages.js';

export interface ExecutorHooks {
  /**
   * Persists a task record (the runner writes it to KV with a revision check). Awaited
   * before the transition is acted on or published; a rejection means "not recorded". Write
   * once: the executor tries again (recordRetry) while protocol's isRetryable says it may help.
   */
  record(rec: TaskRecord): Promise<void>;
  /**
   * Announces a recorded transition (the runner publishes it on the task-state subject).
   * `passed` is true for a state a write went through on its way to another (created and
   * submitted of a task admitted straight to running): a publisher may announce only the state
   * each write ended in, the others being in that record's history.
   */
  publish(event: TaskStateChanged, rec: TaskRecord, passed: boolean): void | Promise<void>;
  /**
   * Asked before a task's end (finished, failed, killed) is written, with that record: what to
   * add to it (the runner: the outputs the task left empty, whose logs then need no end
   * marker). Never throws; a rejection is logged and the end is written without it.
   */
  beforeEnd?(rec: TaskRecord): Promise<EndPatch>;
  log?(level: 'info' | 'warn' | 'error', msg: string, data?: Record<string, unknown>): void;
}

/** What ExecutorHooks.beforeEnd may add to a task's end record. */
export type EndPatch = Partial<Pick<TaskRecord, 'emptyLogs'>>;

/** How submit, refuse and submitRequeued take their task. */
export interface SubmitOptions {
  /**
   * The task is what TaskSubmitted.parse gave (the runner's: the bus decoded its task.submitted
   * message with that schema): it is taken as it is. Otherwise it is parsed first (bounds
   * checked, defaults filled in). A second parse of every task was about 2 % of the runner's CPU
   * in pnpm bench cbuild (issue #15).
   */
  readonly parsed?: boolean;
}

const PARSED: SubmitOptions = { parsed: true };

function parsedTask(input: TaskSubmitted, options: SubmitOptions): TaskSubmitted {
  return options.parsed ? input : TaskSubmitted.parse(input);
}

export interface ExecutorOptions<B extends Backend = Backend> {
  /** Subject-safe id of the resource (TaskStateChanged.resource). */
  readonly resource: string;
  /** Makes the backend, given the executor's side of it (every state change goes through it). */
  readonly backend: (ctx: BackendContext) => B;
  readonly hooks: ExecutorHooks;
  /** Written into records, to tell which runner last handled a task. */
  readonly runner?: string;
  /**
   * The runner process's $SRV id, written into the records it writes with `runner`
   * (TaskRecord.runnerInstance): MajorDomo names it when it queues a task again.
   */
  readonly runnerInstance?: string | undefined;
  /**
   * Tries of a failed record() before the transition is given up (default 4, 50 ms apart and
   * doubling). The only retry of a record write: hooks.record writes once.
   */
  readonly recordRetry?: RetryPolicy;
  /** Ended tasks kept in memory for get()/logs() (default 10,000). */
  readonly keepEnded?: number;
  /**
   * How long an ended task is kept in memory, at most (default 10 minutes, as long as the
   * runner keeps its record's revision for a late update). By count alone, a runner at a few
   * tasks a second held every ended record for most of an hour (pnpm bench soak: RSS +0.5 MB a
   * minute for 40 minutes, ~2 KB a task, until 10,000).
   */
  readonly keepEndedMs?: number;
  /** The clock ended tasks are aged by (ms; default Date.now). */
  readonly now?: () => number;
  /** Where each task's time goes (task-stages.ts; off when not given). */
  readonly stages?: TaskStages | undefined;
}

/**
 * Runs tasks on one resource through a backend, enforcing the lifecycle. Every transition is
 * recorded (hooks.record, awaited) before anything acts on it, then published. Operations on
 * one task are serialised, so a kill cannot overtake the submission it races with.
 *
 *   const ex = new Executor({ resource: 'local', backend: (ctx) => new LocalBackend({ resource }, ctx), hooks });
 *   await ex.submit(task);
 *   const done = await ex.wait(task.taskId);
 */
export class Executor<B extends Backend = Backend> {
  readonly resource: string;
  readonly #backend: B;
  readonly #hooks: ExecutorHooks;
  /** `runner`, and runnerInstance with it: what every record this runner writes names. */
  readonly #who: Pick<TaskRecord, 'runner' | 'runnerInstance'>;
  readonly #recordRetry: RetryPolicy;
  readonly #keepEnded: number;
  readonly #keepEndedMs: number;
  readonly #now: () => number;
  readonly #stages: TaskStages | undefined;
  readonly #records = new Map<string, TaskRecord>();
  /** Ended task ids and when they ended, oldest first. */
  readonly #ended = new Map<string, number>();
  readonly #chains = new Map<string, Promise<unknown>>();
  readonly #waiters = new Map<string, Set<(rec: TaskRecord) => void>>();
  /** settled()'s: resolved once the task has ended and its record is not `stopping`. */
  readonly #settledWaiters = new Map<string, Set<(rec: TaskRecord) => void>>();
  #closed = false;

  constructor(options: ExecutorOptions<B>) {
    this.resource = options.resource;
    this.#hooks = options.hooks;
    this.#who = {
      ...(options.runner ? { runner: options.runner } : {}),
      ...(options.runner && options.runnerInstance
        ? { runnerInstance: options.runnerInstance }
        : {}),
    };
    this.#recordRetry = options.recordRetry ?? { attempts: 4, baseMs: 50, maxMs: 2_000 };
    this.#keepEnded = options.keepEnded ?? 10_000;
    this.#keepEndedMs = options.keepEndedMs ?? 10 * 60_000;
    this.#now = options.now ?? Date.now;
    this.#stages = options.stages;
    this.#backend = options.backend(this.#context());
  }

  get backend(): B {
    return this.#backend;
  }

  get(taskId: string): TaskRecord | undefined {
    return this.#records.get(taskId);
  }

  /** Tasks this executor is handling (ended ones too, while kept). */
  list(): TaskRecord[] {
    return [...this.#records.values()];
  }

  /**
   * Accepts a task: records it as created, then hands it to the backend. Submitting an id
   * this executor already has returns that record and runs nothing again.
   */
  async submit(input: TaskSubmitted, options: SubmitOptions = {}): Promise<TaskRecord> {
    const task = parsedTask(input, options);
    return this.#serial(task.taskId, async () => {
      const known = this.#records.get(task.taskId);
      if (known) return known;
      const time = new Date().toISOString();
      const created = this.#created(task, time);
      // The states the backend admits the task to straight away are recorded in the same
      // write: each is still recorded before it is acted on, and announced after, in order.
      const admission = this.#backend.admit?.(created);
      const path = admission?.path ?? [];
      const steps = [created];
      let rec = created;
      try {
        path.forEach((to, i) => {
          const patch = i === path.length - 1 ? (admission?.patch ?? {}) : {};
          rec = this.#step(rec, to, patch, time);
          steps.push(rec);
        });
        await this.#write(rec);
      } catch (err) {
        admission?.release?.();
        throw err;
      }
      this.#records.set(task.taskId, rec);
      if (this.#stages) {
        const at = performance.now();
        this.#stages.mark(task.taskId, 'recorded', at);
        if (rec.state === 'running') this.#stages.mark(task.taskId, 'running', at);
      }
      for (const [i, s] of steps.entries())
        this.#announce(s, steps[i - 1]?.state, i < steps.length - 1);
      this.#backend.enqueue(rec);
      return rec;
    });
  }

  /**
   * Records a task that must not run (a cwd outside the workspace roots, another profile...)
   * as failed with `reason`, in one write (created → failed), and never hands it to the
   * backend. Like submit, an id this executor already has is left as it is.
   */
  async refuse(
    input: TaskSubmitted,
    reason: string,
    options: SubmitOptions = {},
  ): Promise<TaskRecord> {
    const task = parsedTask(input, options);
    return this.#serial(task.taskId, async () => {
      const known = this.#records.get(task.taskId);
      if (known) return known;
      const time = new Date().toISOString();
      const created = this.#created(task, time);
      const failed = this.#step(created, 'failed', { reason, exitCode: null }, time);
      await this.#write(failed);
      this.#records.set(task.taskId, failed);
      this.#stages?.done(task.taskId);
      this.#announce(created, undefined, true);
      this.#announce(failed, 'created');
      this.#markEnded(failed);
      return failed;
    });
  }

  /**
   * A task MajorDomo queued again after its runner stopped answering. `prior` is its record as
   * read (created, without a runner, at `input`'s attempt, its history that of the attempt
   * before), whose revision the runner took as its own. The backend says whether the attempt
   * before may have started it (Backend.earlierStart; without one it never did): not, it is
   * submitted as any task; started, that copy is followed and recorded here, never started
   * again; unknown, it is recorded failed with the backend's reason. Never run twice.
   */
  async submitRequeued(
    input: TaskSubmitted,
    prior: TaskRecord,
    options: SubmitOptions = {},
  ): Promise<TaskRecord> {
    const task = parsedTask(input, options);
    if (this.#records.has(task.taskId)) return this.submit(task, PARSED);
    const earlier = this.#backend.earlierStart?.(prior) ?? { kind: 'none' };
    if (earlier.kind === 'none') return this.submit(task, PARSED);
    if (earlier.kind === 'unknown') return this.refuse(task, earlier.reason, PARSED);
    return this.#serial(task.taskId, async () => {
      const known = this.#records.get(task.taskId);
      if (known) return known;
      // Its record as stored, this runner's now; the handle naming the runner before, and the
      // reason saying it was queued again, go with the first write (Backend.followEarlier).
      const { handle: _handle, runnerInstance: _before, ...stored } = prior;
      const rec: TaskRecord = { ...stored, task, ...this.#who };
      this.#records.set(task.taskId, rec);
      this.#backend.followEarlier?.(rec, earlier);
      return rec;
    });
  }

  /** A new task's first record, not yet written. */
  #created(task: TaskSubmitted, time: string): TaskRecord {
    return {
      task,
      state: 'created',
      ...this.#who,
      history: [{ state: 'created', time }],
      updated: time,
    };
  }

  /** Pauses a created or submitted task; throws IllegalTransitionError otherwise. */
  async pause(taskId: string, reason = 'paused on request'): Promise<TaskRecord> {
    return this.#serial(taskId, async () => {
      const rec = this.#require(taskId);
      checkPausable(taskId, rec.state);
      const next = await this.#move(rec, 'paused', { reason }, rec.state);
      await this.#backend.pause(next);
      return next;
    });
  }

  /** Returns a paused task to the state it was paused in. */
  async resume(taskId: string): Promise<TaskRecord> {
    return this.#serial(taskId, async () => {
      const rec = this.#require(taskId);
      const to = rec.pausedFrom;
      if (rec.state !== 'paused' || !to)
        throw new IllegalTransitionError(
          taskId,
          rec.state,
          'resumed',
          'only a paused task can be resumed',
        );
      const next = await this.#move(rec, to, {});
      if (next.state === 'created') this.#backend.enqueue(next);
      else await this.#backend.resume(next);
      return next;
    });
  }

  /** Kills a task that has not ended: SIGTERM/SIGKILL, scancel, or just never starting it. */
  async kill(taskId: string, reason = 'killed on request'): Promise<TaskRecord> {
    return this.#serial(taskId, async () => {
      const rec = this.#require(taskId);
      const from = rec.state;
      const next = await this.#move(rec, 'killed', {
        reason,
        exitCode: null,
        ...this.#backend.killPatch?.(rec, from),
      });
      await this.#backend.kill(next, from === 'paused' ? (rec.pausedFrom ?? from) : from);
      return next;
    });
  }

  /**
   * After a restart: takes over the records this runner had (the runner reads them from KV)
   * and lets the backend reconcile them with what really happened meanwhile.
   */
  async adopt(records: readonly TaskRecord[]): Promise<void> {
    const fresh = records.filter((r) => !this.#records.has(r.task.taskId));
    for (const r of fresh) {
      this.#records.set(r.task.taskId, r);
      if (isTerminal(r.state)) this.#markEnded(r);
    }
    await this.#backend.adopt(fresh);
  }

  /** Resolves with the task's record once it has ended (finished, failed or killed). */
  wait(taskId: string): Promise<TaskRecord> {
    const rec = this.#require(taskId);
    if (isTerminal(rec.state)) return Promise.resolve(rec);
    return new Promise((resolve) => {
      const set = this.#waiters.get(taskId) ?? new Set();
      this.#waiters.set(taskId, set);
      set.add(resolve);
    });
  }

  /**
   * Resolves with the task's record once it has ended and nothing of it runs any more: not
   * recorded `stopping` (a killed local task is, until its processes are gone).
   */
  settled(taskId: string): Promise<TaskRecord> {
    const rec = this.#require(taskId);
    if (isSettled(rec)) return Promise.resolve(rec);
    return new Promise((resolve) => {
      const set = this.#settledWaiters.get(taskId) ?? new Set();
      this.#settledWaiters.set(taskId, set);
      set.add(resolve);
    });
  }

  /** The task's stdout or stderr so far (at most the last `maxBytes`), while running and after. */
  async logs(taskId: string | TaskRecord, stream: LogStream = 'stdout', maxBytes = 1 << 20) {
    const rec = typeof taskId === 'string' ? this.#require(taskId) : taskId;
    return this.#backend.logs(rec, stream, maxBytes);
  }

  /**
   * Up to `maxBytes` of the task's output file from `offset`, and the file's size (see
   * Backend.readLog); undefined while there is no file, or when the backend cannot tell.
   */
  async readLog(rec: TaskRecord, stream: LogStream, offset: number, maxBytes: number) {
    return this.#backend.readLog?.(rec, stream, offset, maxBytes);
  }

  stats(): Readonly<Record<string, number>> {
    return this.#backend.stats();
  }

  /** Stops watching. Running tasks are left running; a restarted runner adopts them. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#backend.close();
    await Promise.allSettled([...this.#chains.values()]);
  }

  #require(taskId: string): TaskRecord {
    const rec = this.#records.get(taskId);
    if (!rec) throw new TaskNotFoundError(taskId);
    return rec;
  }

  #serial<T>(taskId: string, fn: () => Promise<T>): Promise<T> {
    return inTurn(this.#chains, taskId, fn);
  }

  /** Records `rec` moved to `to` (through each state of a list, in one write), then announces it. */
  async #move(
    rec: TaskRecord,
    to: TaskState | readonly TaskState[],
    patch: RecordPatch,
    pausedFrom?: TaskState,
  ): Promise<TaskRecord> {
    const path: readonly TaskState[] = typeof to === 'string' ? [to] : to;
    const time = new Date().toISOString();
    const started = startedTime(rec, patch, time);
    const steps: TaskRecord[] = [];
    let next = rec;
    for (const [i, state] of path.entries()) {
      // Not before a step this same write stamps (a task that found a lane free is recorded
      // submitted and running at once): the history stays in order.
      const at = state === 'running' && started && i === 0 ? started : time;
      next = this.#step(next, state, i === path.length - 1 ? patch : {}, at, pausedFrom);
      steps.push(next);
    }
    const ends = isTerminal(next.state);
    if (ends) {
      next = { ...next, ...(await this.#beforeEnd(next)) };
      steps[steps.length - 1] = next;
      this.#stages?.mark(rec.task.taskId, 'end-prepared');
    }
    await this.#write(next);
    this.#records.set(rec.task.taskId, next);
    if (ends) this.#stages?.done(rec.task.taskId);
    for (const [i, s] of steps.entries())
      this.#announce(s, (steps[i - 1] ?? rec).state, i < steps.length - 1);
    if (ends) this.#markEnded(next);
    return next;
  }

  #settleWaiters(rec: TaskRecord): void {
    if (!isSettled(rec)) return;
    const id = rec.task.taskId;
    const waiters = this.#settledWaiters.get(id);
    if (!waiters) return;
    this.#settledWaiters.delete(id);
    for (const w of waiters) w(rec);
  }

  /** The record after one legal transition (not yet written). */
  #step(
    rec: TaskRecord,
    to: TaskState,
    patch: RecordPatch,
    time: string,
    pausedFrom?: TaskState,
  ): TaskRecord {
    checkTransition(rec.task.taskId, rec.state, to, rec.pausedFrom);
    const next: TaskRecord = {
      ...rec,
      ...patch,
      // Written by this process (an adopted record, by the one before it, named that one).
      ...this.#who,
      state: to,
      updated: time,
      history: [...rec.history, { state: to, time }],
    };
    if (to === 'paused') next.pausedFrom = pausedFrom;
    else delete next.pausedFrom;
    // A reason explains the state it came with; it does not outlive a resume.
    if (rec.state === 'paused' && to !== 'killed' && patch.reason === undefined) delete next.reason;
    return next;
  }

  async #beforeEnd(rec: TaskRecord): Promise<EndPatch> {
    if (!this.#hooks.beforeEnd) return {};
    try {
      return await this.#hooks.beforeEnd(rec);
    } catch (err) {
      this.#log('warn', 'could not prepare the end of a task; recorded without it', {
        taskId: rec.task.taskId,
        state: rec.state,
        err: String(err),
      });
      return {};
    }
  }

  /**
   * The one retry of a record write (the hook writes once): tried again while protocol's
   * isRetryable says a retry can help, so a conflict (retryable: false) fails at once.
   */
  async #write(rec: TaskRecord): Promise<void> {
    try {
      await withRetry(this.#recordRetry, () => this.#hooks.record(rec));
    } catch (err) {
      throw new RecordFailedError(rec.task.taskId, rec.state, { cause: err });
    }
  }

  // Not awaited: the record is the truth and is already written; events of one task leave
  // in order on the one connection, and waiting for each ack would only slow the task down.
  #announce(rec: TaskRecord, previous: TaskState | undefined, passed = false): void {
    const event: TaskStateChanged = {
      taskId: rec.task.taskId,
      resource: this.resource,
      state: rec.state,
      ...(previous ? { previous } : {}),
      ...(rec.task.buildId ? { buildId: rec.task.buildId } : {}),
      ...(rec.exitCode !== undefined ? { exitCode: rec.exitCode } : {}),
      ...(rec.reason !== undefined ? { reason: rec.reason.slice(0, 10_000) } : {}),
      ...(rec.jobId !== undefined ? { jobId: rec.jobId } : {}),
      ...(rec.stdoutPath !== undefined ? { stdoutPath: rec.stdoutPath } : {}),
      ...(rec.stderrPath !== undefined ? { stderrPath: rec.stderrPath } : {}),
    };
    try {
      const p = this.#hooks.publish(event, rec, passed);
      if (p) p.catch((err: unknown) => this.#publishFailed(rec, err));
    } catch (err) {
      this.#publishFailed(rec, err);
    }
  }

  // A method, not a closure made for every event: a closure per call is work on the hot path
  // for the rare failure (and a defineProperty each where names are kept, as tsx keeps them).
  #publishFailed(rec: TaskRecord, err: unknown): void {
    this.#log('warn', 'could not publish a task state change', {
      taskId: rec.task.taskId,
      state: rec.state,
      err: String(err),
    });
  }

  #markEnded(rec: TaskRecord): void {
    const id = rec.task.taskId;
    const now = this.#now();
    if (!this.#ended.has(id)) this.#ended.set(id, now);
    const waiters = this.#waiters.get(id);
    this.#waiters.delete(id);
    for (const w of waiters ?? []) w(rec);
    this.#settleWaiters(rec);
    // Oldest first: stops at the first one still young enough, within the count.
    for (const [oldest, at] of this.#ended) {
      if (this.#ended.size <= this.#keepEnded && now - at < this.#keepEndedMs) break;
      this.#ended.delete(oldest);
      this.#records.delete(oldest);
    }
  }

  #log(level: 'info' | 'warn' | 'error', msg: string, data?: Record<string, unknown>): void {
    this.#hooks.log?.(level, msg, { resource: this.resource, ...data });
  }

  #context(): BackendContext {
    return {
      get: (taskId) => this.#records.get(taskId),
      advance: (taskId, from, to, patch, when) =>
        this.#serial(taskId, async () => {
          const rec = this.#records.get(taskId);
          if (!rec || !from.includes(rec.state) || (when && !when(rec))) return undefined;
          return this.#move(rec, to, patch ?? {}, rec.state);
        }),
      update: (taskId, patch) =>
        this.#serial(taskId, async () => {
          const rec = this.#records.get(taskId);
          if (!rec) return undefined;
          const next: TaskRecord = { ...rec, ...patch, updated: new Date().toISOString() };
          await this.#write(next);
          this.#records.set(taskId, next);
          this.#settleWaiters(next);
          return next;
        }),
      pauseForError: async (taskId, err) => {
        const message = err instanceof Error ? err.message : String(err);
        const rec = await this.#serial(taskId, async () => {
          const cur = this.#records.get(taskId);
          if (!cur || isTerminal(cur.state) || cur.state === 'paused') return undefined;
          return this.#move(
            cur,
            'paused',
            {
              reason: `${message} — paused after retries; resume the task once the resource is reachable again`,
            },
            cur.state,
          );
        });
        if (rec) {
          this.#log('warn', 'task paused after transport errors', { taskId, err: message });
          await this.#backend.pause(rec);
        }
      },
      log: (level, msg, data) => this.#log(level, msg, data),
    };
  }
}

/**
 * When a task recorded running in this write started, if the handle written with it says
 * (`startedAt`, ms since the epoch: the local backend's, when the task took its lane), kept
 * between the record's last state and the write. A local task starts before its running record
 * is written, and one that ends before that write is recorded submitted, running and ended in
 * one: stamped at the write, its history would say it ran for no time at all (pnpm bench
 * cbuild's lane occupancy read 0.028 from it).
 */
function startedTime(rec: TaskRecord, patch: RecordPatch, time: string): string | undefined {
  // The handle written with this step: a record's older one may be of an earlier attempt.
  const startedAt = patch.handle?.startedAt;
  if (typeof startedAt !== 'number' || !Number.isFinite(startedAt)) return undefined;
  const last = Date.parse(rec.history.at(-1)?.time ?? '');
  const at = Math.min(Math.max(startedAt, Number.isNaN(last) ? startedAt : last), Date.parse(time));
  return new Date(at).toISOString();
}

/** Ended, and nothing of it runs any more (a killed task is recorded `stopping` until then). */
function isSettled(rec: TaskRecord): boolean {
  return isTerminal(rec.state) && rec.stopping !== true;
}
