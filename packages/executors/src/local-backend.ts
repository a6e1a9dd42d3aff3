import { existsSync, mkdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { LocalResource, TaskRecord, TaskState } from '@computepods/protocol';
import type {
  Admission,
  Backend,
  BackendContext,
  EarlierStart,
  EarlierStarted,
  LogRead,
  LogStream,
  RecordPatch,
  UnpublishedLogs,
} from './backend.js';
import { isRetryable, UnsafeValueError } from './errors.js';
import { type LocalHandle, localHandle, requeuedHandle } from './handle.js';
import { isTerminal } from './lifecycle.js';
import type { Liveness } from './liveness.js';
import { LIFE_LINK, TASK_FILES, TaskFolderSweep } from './local-sweep.js';
import { isTaskProcess, readPidFile } from './pid-file.js';
import { groupAlive, signalGroup, startTimeOf } from './process-group.js';
import { readFrom, readTail } from './read-tail.js';
import { DEFAULT_KEEP, type KeepPolicy } from './slurm-sweep.js';
import { type SpawnEnd, Spawner, type SpawnerOptions } from './spawner.js';
import { taskBaseEnv } from './task-env.js';
import { type EnvironmentSite, exitReason, withEnvironment } from './task-environment.js';
import { claimedAt, fenceLife, folderLife, lifeOf } from './task-life.js';
import type { TaskStages } from './task-stages.js';
import type { TaskStaging } from './task-staging.js';

/** How often a stopped task's process group is looked for until it is gone (#clearWhenGone). */
const GONE_POLL_MS = 25;
/**
 * An end waits for another lane's (#endTogether) only while the task that ended before ran
 * shorter than this: after a task that ran longer, the next one started is not likely to end
 * within the hold either (a chef's compiles: 40-100 ms each), and the hold only cost a timer's
 * wakeup and the hold itself at every end (pnpm bench cbuild: 2.6 ms a task, most of them).
 */
const SHORT_TASK_MS = 10;
/**
 * Spawner co-processes at most (one a lane up to this): each is an idle Python process (~10 MB)
 * between its tasks' starts, and one serves over a thousand no-op starts a second.
 */
const SPAWNERS_MAX = 4;

export interface LocalBackendOptions {
  readonly resource: LocalResource;
  /** Parent of the task folders; default the resource's jobs_local_dir. */
  readonly jobsDir?: string;
  /**
   * Where task folders were made before they moved to jobsDir (the runner's: the resource's
   * jobs_local_dir, before projects/<project>/): its ended task folders of that old layout are
   * swept too, as jobsDir's are (local-sweep.ts oldLayout).
   */
  readonly oldJobsDir?: string | undefined;
  /** Tasks running at once; default parallel_tasks_per_job, else one per CPU core. */
  readonly parallel?: number;
  /** Between SIGTERM and SIGKILL when a task is killed or times out (default 5 s). */
  readonly killGraceMs?: number;
  /** How often processes adopted after a restart are checked (default jobs_poll_interval, ≥ 0.2 s). */
  readonly pollMs?: number;
  /** How long an adopted running task may lack its pid file before it is started (default 2 s). */
  readonly startGraceMs?: number;
  /** Base environment of every task (default the runner's own, less its secrets); task.env is laid over it. */
  readonly env?: NodeJS.ProcessEnv;
  /**
   * Tasks that declare files run in a work folder this fills and empties (a pilot worker that
   * cannot see the pods' workspace); without it they run in their cwd.
   */
  readonly staging?: TaskStaging;
  /** How long ended task folders are kept (local-sweep.ts; default DEFAULT_KEEP). */
  readonly keep?: KeepPolicy | undefined;
  /** Between two sweeps of ended task folders (default 60 s; the first comes with adopt). */
  readonly sweepEveryMs?: number | undefined;
  /** The clock keep times are measured with (default Date.now; tests move it on). */
  readonly now?: () => number;
  /** Tasks whose logs are still being published: their folders are not swept. */
  readonly unpublishedLogs?: UnpublishedLogs | undefined;
  /** Where each task's time goes (task-stages.ts; off when not given). */
  readonly stages?: TaskStages | undefined;
  /**
   * Given, a queued task is started at once when its lane frees, its running record written
   * alongside, if the runner's epoch has not moved since the task was queued (liveness.ts);
   * otherwise, and without it, the task is recorded running first and then started.
   */
  readonly liveness?: Liveness | undefined;
  /**
   * The runner this backend runs tasks for: marked in the jobs folder (RUNNERS_DIR) at adopt,
   * so that another runner taking a task of it queued again knows it can look for its start.
   */
  readonly runner?: string | undefined;
  /**
   * The runner process's $SRV id, written in its mark: a mark left by an earlier process of the
   * runner id, since reused elsewhere, names another process than the one MajorDomo last heard.
   */
  readonly runnerInstance?: string | undefined;
  /** How long the spawner holds a started task's pid for its exit (spawner.ts; tests). */
  readonly pidHoldMs?: number | undefined;
  /**
   * How long a task's end may wait to be recorded with another lane's (#endTogether; default
   * 2 ms): while a lane holds a task started before its record whose pid has not come (short,
   * most likely), the two ends go to KV in one socket write.
   */
  readonly endHoldMs?: number;
}

interface Running {
  /** 0 until the spawner reports it (or the pid file shows it). */
  pid: number;
  timer?: NodeJS.Timeout;
  /**
   * Adopted after a restart, or started by a spawner that died since: its end is found by
   * polling the task folder.
   */
  adopted: boolean;
  /** Adopted as running without a pid file yet: start it if none shows up by then. */
  startBy?: number;
  /** Its process was seen gone without an exit file: one may still come until then (the spawner's). */
  endBy?: number;
  /** Recorded killed (or timed out) before its pid was known: signal it once it is. */
  terminate?: TaskRecord;
  /** Times its spawner died before reporting its pid: a second time fails the task. */
  lostBeforeStart?: number;
  /**
   * Started (or followed) before its running record was stored: resolves true once it is, false
   * when the record went elsewhere (this copy is killed) or the backend closed first.
   */
  recorded?: Promise<boolean>;
  /** While its running record is not stored yet. */
  unrecorded?: boolean;
  /**
   * Started before its running record, whose write is not issued yet: it is once the spawner
   * reports the pid (or an end that is no exit of it), or, when the exit comes with the pid (a
   * task of less than the spawner's pid hold), its end is recorded with it in one write.
   */
  pendingRunning?: RunningPatch;
  /** The life of the record it was started for (task-life.ts). */
  life?: string | undefined;
  /** Its record went elsewhere before its pid was known: SIGKILL it once it is. */
  killOnStart?: boolean;
  /** Its record went elsewhere: its folder goes once the spawner reports its end. */
  dropped?: boolean;
  /** Its folder was claimed for this life by another start (spawner.py): followed, never started here. */
  neverStart?: boolean;
  /**
   * Started by the attempt before, with a runner taken for dead (followEarlier): another runner
   * may follow it too, so a record that went elsewhere lets it go, never kills it.
   */
  earlier?: boolean;
}

/**
 * The folder in a jobs folder where each runner that keeps its task folders there has a file
 * named by its id (encoded): not a task id (local-sweep.ts TASK_DIR), so never swept.
 */
export const RUNNERS_DIR = '@runners';

/** A running record written from other states than its own (#recordRunning). */
interface RecordedAs {
  readonly from: TaskState[];
  readonly to: TaskState[];
  readonly reason: string;
}

/**
 * Local processes, at most `parallel` at once. Tasks wait in FIFO order (state submitted);
 * each runs in its own session and process group under a wrapper that records pid and exit
 * code in the task folder `<jobsDir>/<taskId>/` (pid, exit, stdout, stderr), started by a
 * long-lived spawner (spawner.ts). A task admitted while a slot is free is recorded created,
 * submitted and running in one write. Ended tasks' folders go after their keep time
 * (local-sweep.ts), swept from adopt on.
 */
export class LocalBackend implements Backend {
  readonly type = 'local' as const;
  readonly jobsDir: string;
  readonly parallel: number;
  readonly #killGraceMs: number;
  readonly #pollMs: number;
  readonly #startGraceMs: number;
  readonly #c: BackendContext;
  readonly #queue: string[] = [];
  readonly #running = new Map<string, Running>();
  /**
   * Ended tasks recorded `stopping`, watched until nothing of them runs (#clearWhenGone): each
   * with its look, made at once when its leader's end is reported (#ended).
   */
  readonly #stopping = new Map<string, () => void>();
  #poller: NodeJS.Timeout | undefined;
  #closed = false;
  /** One co-process a lane, at most SPAWNERS_MAX (#spawnerFor). */
  readonly #spawners: readonly Spawner[];
  readonly #runner: string | undefined;
  readonly #runnerInstance: string | undefined;
  readonly #stats = {
    spawned: 0,
    adopted: 0,
    followedEarlier: 0,
    collectedAfterRestart: 0,
    startedAfterRestart: 0,
    startedBeforeRecord: 0,
    claimedElsewhere: 0,
  };
  readonly #liveness: Liveness | undefined;
  /** Queued tasks' epochs (Liveness) when their last record write was acknowledged. */
  readonly #epochs = new Map<string, number>();
  readonly #envSite: EnvironmentSite;
  readonly #staging: TaskStaging | undefined;
  readonly #endHoldMs: number;
  /** Ends waiting for another lane's (#endTogether). */
  #endWaiting: (() => void)[] = [];
  /** How long the task that ended last ran (ms; undefined: none yet, or not known). */
  #lastRanMs: number | undefined;
  #endTimer: NodeJS.Timeout | undefined;
  readonly #sweeper: TaskFolderSweep;
  readonly #oldSweeper: TaskFolderSweep | undefined;
  readonly #stages: TaskStages | undefined;

  constructor(options: LocalBackendOptions, ctx: BackendContext) {
    this.#c = ctx;
    const r = options.resource;
    this.#envSite = {
      dir: join(r.tasks_local_dir, 'envs'),
      python: r.tasks_python_config,
      pipCacheDir: r.tasks_pip_cache_dir,
    };
    this.jobsDir = options.jobsDir ?? r.jobs_local_dir;
    this.parallel =
      options.parallel ?? r.jobs_runner_config.parallel_tasks_per_job ?? availableParallelism();
    this.#killGraceMs = options.killGraceMs ?? 5_000;
    this.#pollMs = options.pollMs ?? Math.max(200, r.jobs_poll_interval * 1000);
    this.#startGraceMs = options.startGraceMs ?? 2_000;
    this.#staging = options.staging;
    this.#stages = options.stages;
    this.#liveness = options.liveness;
    this.#endHoldMs = options.endHoldMs ?? 2;
    this.#runner = options.runner;
    this.#runnerInstance = options.runnerInstance;
    const envs = resolve(this.#envSite.dir);
    const sweep = (jobsDir: string, oldLayout: boolean) =>
      new TaskFolderSweep({
        jobsDir,
        // The environments' folder, when tasks_local_dir is the jobs folder too.
        notTasks: new Set(dirname(envs) === resolve(jobsDir) ? [basename(envs)] : []),
        keep: options.keep ?? DEFAULT_KEEP,
        everyMs: options.sweepEveryMs ?? 60_000,
        now: options.now ?? Date.now,
        watching: () => this.#watching(options.unpublishedLogs),
        log: (level, msg, data) => ctx.log(level, msg, data),
        oldLayout,
      });
    this.#sweeper = sweep(this.jobsDir, false);
    const old = options.oldJobsDir;
    this.#oldSweeper = old && resolve(old) !== resolve(this.jobsDir) ? sweep(old, true) : undefined;
    const spawner: SpawnerOptions = {
      env: options.env ?? taskBaseEnv(),
      log: (level, msg, data) => ctx.log(level, msg, data),
      times: !!options.stages,
      ...(options.pidHoldMs !== undefined ? { pidHoldMs: options.pidHoldMs } : {}),
    };
    const spawners = Math.max(1, Math.min(this.parallel, SPAWNERS_MAX));
    this.#spawners = Array.from({ length: spawners }, () => new Spawner(spawner));
    // Started now, so the first task does not wait for the interpreter to boot.
    for (const s of this.#spawners) s.warm();
  }

  /** The spawners' co-process pids while they run (tests kill them; benches count their CPU). */
  get spawnerPids(): number[] {
    return this.#spawners.flatMap((s) => (s.pid === undefined ? [] : [s.pid]));
  }

  /**
   * The spawner with the fewest tasks in flight (the first of those). A spawner is held while a
   * task it starts execs (posix_spawn's vfork waits for that: ~0.5 ms for a no-op here) and
   * while it reaps one and writes its exit file, so lanes of short tasks sharing one spawner
   * queue behind each other; with one each, a lane's start never waits for another lane's.
   */
  #spawnerFor(): Spawner {
    let best = this.#spawners[0] as Spawner;
    for (const s of this.#spawners) if (s.inFlight < best.inFlight) best = s;
    return best;
  }

  // A free slot and nobody waiting: reserve the slot, and the task is recorded running in the
  // same write as created; otherwise created and submitted together.
  admit(rec: TaskRecord): Admission | undefined {
    const id = rec.task.taskId;
    if (this.#closed) return undefined;
    if (this.#running.size >= this.parallel || this.#queue.length > 0 || this.#running.has(id))
      return { path: ['submitted'] };
    let dir: string;
    try {
      dir = this.taskDir(id);
    } catch {
      return { path: ['submitted'] }; // #start fails it, saying why
    }
    this.#running.set(id, { pid: 0, adopted: false });
    this.#stages?.mark(id, 'lane');
    return {
      path: ['submitted', 'running'],
      patch: this.#runningPatch(dir),
      release: () => {
        this.#running.delete(id);
        this.#pump();
      },
    };
  }

  enqueue(rec: TaskRecord): void {
    const id = rec.task.taskId;
    const handle = localHandle(rec.handle);
    if (rec.state === 'running' && handle) {
      this.#spawn(rec, handle);
      return;
    }
    if (rec.state === 'submitted') {
      this.#queueRecorded(id);
      return;
    }
    void this.#c.advance(id, ['created'], 'submitted').then(
      (r) => {
        if (r) this.#queueRecorded(id);
      },
      (err: unknown) =>
        this.#c.log('error', 'could not record a task as submitted', {
          taskId: id,
          err: String(err),
        }),
    );
  }

  async pause(rec: TaskRecord): Promise<void> {
    this.#dequeue(rec.task.taskId);
  }

  async resume(rec: TaskRecord): Promise<void> {
    if (rec.state === 'submitted') this.#queueRecorded(rec.task.taskId);
  }

  /** A task with a process (or one on its way) is recorded killed with `stopping`. */
  killPatch(rec: TaskRecord, from: TaskState): RecordPatch {
    const started = from === 'running' || this.#running.get(rec.task.taskId)?.unrecorded;
    return started ? { stopping: true } : {};
  }

  async kill(rec: TaskRecord, from: TaskState): Promise<void> {
    const id = rec.task.taskId;
    this.#dequeue(id);
    // Started before its running record was stored, and killed first: it runs all the same.
    if (from === 'running' || this.#running.get(id)?.unrecorded) this.#terminate(id, rec);
  }

  async adopt(recs: readonly TaskRecord[]): Promise<void> {
    this.#markRunner();
    for (const rec of recs) {
      const id = rec.task.taskId;
      if (rec.state === 'created') this.enqueue(rec);
      // Never recorded running: started only if its folder holds this life of its record
      // (task-life.ts: started before its record, or by a spawner still reading what the dead
      // runner asked): follow that, never start again. A folder of another life is stale.
      else if (rec.state === 'submitted') {
        const dir = this.#folderOf(id);
        const life = lifeOf(rec);
        if (dir && life !== undefined && folderLife(dir) === life) this.#followUnrecorded(id, dir);
        else this.#queue.push(id);
      } else if (rec.state === 'running') this.#reattach(rec);
      else if (rec.state === 'killed' || rec.state === 'failed') {
        // Recorded killed (or timed out) but the runner died before it could act: act now.
        const h = localHandle(rec.handle);
        const p = h ? readPidFile(h.dir) : undefined;
        if (h && p && isTaskProcess(p, h.dir)) this.#terminate(id, rec, p.pid);
        else if (rec.stopping) this.#clearWhenGone(id, p?.pid);
      }
    }
    this.#pump();
    this.#ensurePoller();
    // Every task still ours has its record in the executor by now: its folder is safe.
    this.#sweeper.start();
    this.#oldSweeper?.start();
  }

  /**
   * Whether the attempt before `rec` (queued again by MajorDomo, its runner taken for dead) may
   * have started it. A local task starts only once recorded submitted, and then, if before its
   * running record (the early start), in its folder claimed for that life of the record
   * (task-life.ts). So: never submitted, never started. Else, when the dead runner kept its task
   * folders in this jobs folder (its mark in RUNNERS_DIR), the folder tells, fenced (fenceLife)
   * so that a late start of that life (its spawner still reading its last requests) cannot
   * follow: claimed by that life, it started; not, it never will. The dead runner's folders
   * elsewhere (another machine, another jobs_local_dir): it cannot be told.
   */
  earlierStart(rec: TaskRecord): EarlierStart {
    const id = rec.task.taskId;
    const life = lifeOf(rec);
    if (life === undefined) return { kind: 'none' };
    const dir = this.#folderOf(id);
    if (dir === undefined) return { kind: 'none' }; // an id no folder can have: never started
    const requeued = requeuedHandle(rec.handle);
    const runner = requeued?.runner;
    const who = runner === undefined ? 'its runner (not named in its record)' : `runner ${runner}`;
    const unknown = (why: string): EarlierStart => {
      const reason = `${who} stopped answering with this task waiting or started, its start not recorded yet; ${why}: it may have run, so it is not run again`;
      this.#c.log('warn', 'task queued again may have started before: not run again', {
        taskId: id,
        reason,
      });
      return { kind: 'unknown', reason };
    };
    if (runner === undefined || !this.#keepsFoldersHere(runner, requeued?.instances))
      return unknown(`its task folders are not in ${this.jobsDir}, where this runner could look`);
    try {
      if (fenceLife(dir, life)) return { kind: 'none' };
    } catch (err) {
      return unknown(`its task folder ${dir} could not be claimed (${(err as Error).message})`);
    }
    this.#c.log('warn', 'task queued again was started by the runner before: following it', {
      taskId: id,
      runner,
      dir,
    });
    return { kind: 'started', dir, runner };
  }

  /**
   * The copy the attempt before started in `start.dir`: recorded running there (created,
   * submitted and running in one write, from the record `rec` MajorDomo queued again) and
   * followed, as a restarted runner follows its own (#followUnrecorded); never started here.
   */
  followEarlier(rec: TaskRecord, start: EarlierStarted): void {
    this.#stats.followedEarlier++;
    this.#follow(rec.task.taskId, start.dir, {
      from: ['created'],
      to: ['submitted', 'running'],
      reason: `runner ${start.runner} started it before it stopped answering; followed in its folder${this.#runner ? ` by runner ${this.#runner}` : ''}, not run again`,
    });
    this.#ensurePoller();
  }

  /** Marks this jobs folder as where this runner keeps its task folders (RUNNERS_DIR). */
  #markRunner(): void {
    if (this.#runner === undefined) return;
    const marks = join(this.jobsDir, RUNNERS_DIR);
    try {
      mkdirSync(marks, { recursive: true });
      writeFileSync(join(marks, encodeURIComponent(this.#runner)), this.#runnerInstance ?? '');
    } catch (err) {
      // Then a task of this runner queued again after its death is failed, not run again.
      this.#c.log('warn', 'cannot mark the jobs folder as this runner’s', {
        dir: marks,
        err: String(err),
      });
    }
  }

  /**
   * Whether `runner` keeps its task folders here: its mark is here and, when MajorDomo named the
   * processes of it it last heard (`instances`), one of them wrote it. A mark naming another
   * process (or none) was left by an earlier process of that runner id, which may since have
   * run elsewhere: its folders cannot be told.
   */
  #keepsFoldersHere(runner: string, instances: readonly string[] | undefined): boolean {
    let wrote: string;
    try {
      wrote = readFileSync(join(this.jobsDir, RUNNERS_DIR, encodeURIComponent(runner)), 'utf8');
    } catch {
      return false;
    }
    return instances === undefined || instances.includes(wrote);
  }

  async logs(rec: TaskRecord, stream: LogStream, maxBytes: number): Promise<string> {
    const path = stream === 'stdout' ? rec.stdoutPath : rec.stderrPath;
    if (!path) return '';
    return readTail(path, maxBytes);
  }

  async readLog(
    rec: TaskRecord,
    stream: LogStream,
    offset: number,
    maxBytes: number,
  ): Promise<LogRead | undefined> {
    const path = stream === 'stdout' ? rec.stdoutPath : rec.stderrPath;
    return path ? readFrom(path, offset, maxBytes) : undefined;
  }

  stats(): Readonly<Record<string, number>> {
    const old = this.#oldSweeper?.stats;
    return {
      ...this.#stats,
      ...this.#sweeper.stats,
      ...(old ? { oldLayoutSwept: old.swept } : {}),
      running: this.#running.size,
      queued: this.#queue.length,
    };
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#releaseEnds();
    clearInterval(this.#poller);
    for (const r of this.#running.values()) clearTimeout(r.timer);
    for (const s of this.#spawners) s.close();
    await this.#sweeper.close();
    await this.#oldSweeper?.close();
  }

  /** Removes the ended task folders past their keep time now (tests); never fails. */
  async sweepNow(): Promise<void> {
    await this.#sweeper.sweepNow();
    await this.#oldSweeper?.sweepNow();
  }

  /**
   * Which task folders the sweep must leave, as things stand: a task whose record has not
   * ended (queued, running, adopted, or its outputs and end being collected: the end is
   * recorded last) or that holds a slot, and one whose log is still being read to be published.
   */
  #watching(unpublished: UnpublishedLogs | undefined): (taskId: string) => boolean {
    const held = new Set([...(unpublished?.() ?? [])].map((r) => r.task.taskId));
    return (id) => {
      if (this.#running.has(id) || held.has(id)) return true;
      const state = this.#c.get(id)?.state;
      return state !== undefined && !isTerminal(state);
    };
  }

  taskDir(taskId: string): string {
    // Task ids are [A-Za-z0-9_.:-]; only "." and ".." could leave the jobs folder.
    if (taskId === '.' || taskId === '..')
      throw new UnsafeValueError(
        'task id',
        taskId,
        'it would name a folder outside the jobs folder',
      );
    return join(this.jobsDir, taskId);
  }

  #folderOf(id: string): string | undefined {
    try {
      return this.taskDir(id);
    } catch {
      return undefined;
    }
  }

  #dequeue(id: string): void {
    const i = this.#queue.indexOf(id);
    if (i >= 0) this.#queue.splice(i, 1);
    this.#epochs.delete(id);
  }

  /** Queues a task whose record write was just acknowledged, with the epoch of then. */
  #queueRecorded(id: string): void {
    if (this.#liveness) this.#epochs.set(id, this.#liveness.epoch());
    this.#queue.push(id);
    this.#pump();
  }

  #pump(): void {
    while (!this.#closed && this.#running.size < this.parallel) {
      const id = this.#queue.shift();
      if (id === undefined) return;
      // Reserve the slot before the (async) record, or the pool would overfill.
      this.#running.set(id, { pid: 0, adopted: false });
      this.#stages?.mark(id, 'lane');
      void this.#start(id);
    }
  }

  async #start(id: string): Promise<void> {
    const epoch = this.#epochs.get(id);
    this.#epochs.delete(id);
    let dir: string;
    try {
      dir = this.taskDir(id);
    } catch (err) {
      this.#running.delete(id);
      await this.#c.advance(id, ['submitted'], 'failed', {
        exitCode: null,
        reason: (err as Error).message,
      });
      this.#pump();
      return;
    }
    const patch = this.#runningPatch(dir);
    const queued = this.#c.get(id);
    // Nothing can have taken the task from this runner since it was queued (its epoch did not
    // move: connected, never stalled): start it now, its running record written alongside.
    if (
      epoch !== undefined &&
      epoch === this.#liveness?.epoch() &&
      queued?.state === 'submitted' &&
      !(this.#staging && queued.task.files)
    ) {
      this.#startBeforeRecord(id, queued, patch);
      return;
    }
    let rec: TaskRecord | undefined;
    try {
      rec = await this.#c.advance(id, ['submitted'], 'running', patch);
    } catch (err) {
      this.#running.delete(id);
      // Someone else wrote the record since (MajorDomo took the task from a runner it believed
      // dead, and re-queued or failed it): this copy must never run, and trying again cannot
      // succeed. Only a record that could not be written at all is tried again.
      if (!isRetryable((err as Error).cause ?? err)) {
        this.#c.log('warn', 'task record changed elsewhere; not running this copy', {
          taskId: id,
          err: String(err),
        });
        this.#pump();
        return;
      }
      this.#c.log('error', 'could not record a task as running; it stays queued', {
        taskId: id,
        err: String(err),
      });
      setTimeout(() => {
        this.#queue.push(id);
        this.#pump();
      }, 1_000).unref();
      return;
    }
    if (!rec) {
      this.#running.delete(id);
      this.#pump();
      return;
    }
    this.#stages?.mark(id, 'running');
    this.#spawn(rec, patch.handle);
  }

  #runningPatch(dir: string, startedAt = Date.now()) {
    const handle: LocalHandle = { kind: 'local', dir, startedAt };
    return { handle, stdoutPath: join(dir, 'stdout'), stderrPath: join(dir, 'stderr') };
  }

  /** Spawns a queued task at once and records it running meanwhile (#recordRunning). */
  #startBeforeRecord(id: string, rec: TaskRecord, patch: RunningPatch): void {
    const entry = this.#running.get(id);
    if (!entry) return;
    this.#stats.startedBeforeRecord++;
    entry.unrecorded = true;
    entry.life = lifeOf(rec);
    // Written once the spawner says more (#issueRunning), or with the task's end (#ended).
    entry.pendingRunning = patch;
    this.#spawn(rec, patch.handle, { timeout: false });
  }

  /** The running write of a task started before it, if it was not issued yet. */
  #issueRunning(id: string, entry: Running): void {
    const patch = entry.pendingRunning;
    if (!patch) return;
    entry.pendingRunning = undefined;
    entry.recorded = this.#recordRunning(id, entry, patch);
    // No end comes from this lane soon: an end waiting for one goes now.
    this.#releaseEnds();
  }

  /**
   * Undefined when a task's end may be recorded at once; else resolves when it may. Each socket
   * write to NATS costs more than its messages (loopback delivery, the server's wakeup): with
   * two lanes of short tasks, one end waits for the other lane's (at most endHoldMs, and only
   * while that lane's task is started and its pid not yet come), and both records leave in one
   * write. An end that finds one waiting lets it go with it. Not after a task that ran
   * SHORT_TASK_MS or longer: the tasks here are not that short.
   */
  #endTogether(): Promise<void> | undefined {
    if (this.#endWaiting.length) {
      this.#releaseEnds();
      return undefined;
    }
    if (this.#closed || this.#endHoldMs <= 0) return undefined;
    if (this.#lastRanMs !== undefined && this.#lastRanMs >= SHORT_TASK_MS) return undefined;
    let soon = false;
    for (const e of this.#running.values()) if (e.pendingRunning) soon = true;
    if (!soon) return undefined;
    return new Promise((resolve) => {
      this.#endWaiting.push(resolve);
      this.#endTimer ??= setTimeout(() => this.#releaseEnds(), this.#endHoldMs);
    });
  }

  #releaseEnds(): void {
    if (!this.#endWaiting.length) return;
    clearTimeout(this.#endTimer);
    this.#endTimer = undefined;
    const waiting = this.#endWaiting;
    this.#endWaiting = [];
    for (const go of waiting) go();
  }

  /**
   * A task recorded submitted whose folder holds its life after a restart: the dead runner
   * started it before its running record was stored (or its spawner was about to). It is
   * recorded running with that folder and followed there, never started again.
   */
  #followUnrecorded(id: string, dir: string): void {
    this.#stats.adopted++;
    this.#follow(id, dir);
  }

  /**
   * Follows a copy started in `dir` before its running record (this runner's before a restart,
   * or, with `earlier`, the attempt before's): recorded running there, never started here.
   */
  #follow(id: string, dir: string, earlier?: RecordedAs): void {
    const entry: Running = {
      pid: 0,
      adopted: true,
      neverStart: true,
      unrecorded: true,
      ...(earlier ? { earlier: true } : {}),
      startBy: performance.now() + this.#startGraceMs,
    };
    this.#running.set(id, entry);
    entry.recorded = this.#recordRunning(
      id,
      entry,
      this.#runningPatch(dir, claimedAt(dir)),
      earlier,
    );
  }

  /**
   * The running record of a task already started (or followed): tried again for as long as the
   * store cannot be reached (the task runs meanwhile, as one recorded just before an outage
   * would). A record someone else changed (MajorDomo took the task from a runner it believed
   * dead), or a task killed or paused meanwhile, kills this copy at once and drops it.
   */
  async #recordRunning(
    id: string,
    entry: Running,
    patch: RunningPatch,
    how: RecordedAs | undefined = undefined,
  ): Promise<boolean> {
    for (let tries = 1; ; tries++) {
      let rec: TaskRecord | undefined;
      try {
        rec = how
          ? await this.#c.advance(id, how.from, how.to, { ...patch, reason: how.reason })
          : await this.#c.advance(id, ['submitted'], 'running', patch, this.#ofLife(entry));
      } catch (err) {
        if (entry.earlier && !isRetryable((err as Error).cause ?? err)) {
          this.#c.log('warn', 'task record changed elsewhere; leaving the copy it follows', {
            taskId: id,
            err: String(err),
          });
          this.#letGo(id, entry);
          return false;
        }
        if (!isRetryable((err as Error).cause ?? err)) {
          this.#c.log('warn', 'task record changed elsewhere; killing the copy started here', {
            taskId: id,
            err: String(err),
          });
          this.#dropCopy(id, entry, patch.handle.dir);
          return false;
        }
        this.#c.log('error', 'could not record a started task as running; trying again', {
          taskId: id,
          tries,
          err: String(err),
        });
        await sleep(1_000, undefined, { ref: false });
        // Stopping: the task runs on; a restarted runner finds its folder and follows it.
        if (this.#closed) return false;
        continue;
      }
      if (!rec) {
        this.#c.log('warn', 'task killed or paused before its start was recorded; killing it', {
          taskId: id,
        });
        this.#dropCopy(id, entry, patch.handle.dir);
        return false;
      }
      entry.unrecorded = false;
      this.#stages?.mark(id, 'running');
      if (this.#running.get(id) === entry) this.#armTimeout(id, rec, patch.handle);
      return true;
    }
  }

  /**
   * Only the life a copy was started for: a task paused and resumed meanwhile (a new life,
   * queued again) is not this copy's to record.
   */
  #ofLife(entry: Running): ((rec: TaskRecord) => boolean) | undefined {
    if (entry.life === undefined) return undefined;
    return (rec) => lifeOf(rec) === entry.life;
  }

  /**
   * A task started before its record that ended before its running write was issued (its pid
   * and exit came together): submitted, running and its end in one write, tried again like
   * #recordRunning. A record that went elsewhere, or a task killed or paused meanwhile: nothing
   * is recorded for this copy, and its folder goes.
   */
  async #recordStartedAndEnded(
    id: string,
    entry: Running,
    patch: RunningPatch,
    end: EndRecord,
  ): Promise<void> {
    const dir = patch.handle.dir;
    for (let tries = 1; ; tries++) {
      let rec: TaskRecord | undefined;
      try {
        rec = await this.#c.advance(
          id,
          ['submitted'],
          ['running', end.to],
          { ...patch, ...end.patch },
          this.#ofLife(entry),
        );
      } catch (err) {
        if (!isRetryable((err as Error).cause ?? err)) {
          this.#c.log('warn', 'task record changed elsewhere; the copy started here has ended', {
            taskId: id,
            err: String(err),
          });
          this.#removeDropped(id, dir, entry.life);
          return;
        }
        this.#c.log('error', 'could not record a started task as ended; trying again', {
          taskId: id,
          tries,
          err: String(err),
        });
        await sleep(1_000, undefined, { ref: false });
        // Stopping: a restarted runner finds its folder (this life, an exit) and records it.
        if (this.#closed) return;
        continue;
      }
      if (!rec) {
        this.#c.log('warn', 'task killed or paused before its start was recorded; it has ended', {
          taskId: id,
        });
        this.#removeDropped(id, dir, entry.life);
        return;
      }
      this.#stages?.mark(id, 'running');
      return;
    }
  }

  /** A followed copy whose record went elsewhere: no longer watched here, left running. */
  #letGo(id: string, entry: Running): void {
    entry.unrecorded = false;
    if (this.#running.get(id) !== entry) return;
    clearTimeout(entry.timer);
    this.#running.delete(id);
    this.#pump();
  }

  /** SIGKILL to a copy whose record went elsewhere; its lane is free again at once. */
  #dropCopy(id: string, entry: Running, dir: string): void {
    entry.unrecorded = false;
    entry.dropped = true;
    const p = entry.pid ? undefined : readPidFile(dir);
    const pid = entry.pid || (p && isTaskProcess(p, dir) ? p.pid : 0);
    if (pid) signalGroup(pid, 'SIGKILL');
    else entry.killOnStart = true;
    if (this.#running.get(id) !== entry) return;
    clearTimeout(entry.timer);
    this.#running.delete(id);
    this.#pump();
  }

  /**
   * The folder of a copy killed because its record went elsewhere, once it ended: nothing is
   * ever read from it (no end is recorded for that copy), so it does not wait days for the
   * sweep. Only while it still holds that life and no new life of the task is this backend's
   * (queued again, or started: its folder now); done synchronously, so that no start of this
   * runner comes in between.
   */
  #removeDropped(id: string, dir: string, life: string | undefined): void {
    if (this.#running.has(id) || this.#queue.includes(id)) return;
    if (life === undefined || folderLife(dir) !== life) return;
    try {
      for (const f of [...TASK_FILES, LIFE_LINK]) rmSync(join(dir, f), { force: true });
      rmdirSync(dir);
    } catch (err) {
      this.#c.log('warn', 'could not remove the folder of a copy killed after a conflict', {
        taskId: id,
        err: String(err),
      });
    }
  }

  /** Another start claimed its folder for this life first (spawner.py): follow it there. */
  #followClaimed(id: string, entry: Running): void {
    this.#stats.claimedElsewhere++;
    this.#c.log('warn', 'task folder claimed by another start: following it, not starting again', {
      taskId: id,
    });
    entry.adopted = true;
    entry.neverStart = true;
    entry.startBy = performance.now() + this.#startGraceMs;
    this.#ensurePoller();
  }

  #spawn(
    rec: TaskRecord,
    handle: LocalHandle,
    how: { reuse?: boolean; timeout?: boolean } = {},
  ): void {
    const id = rec.task.taskId;
    const dir = handle.dir;
    const entry: Running = this.#running.get(id) ?? { pid: 0, adopted: false };
    this.#running.set(id, entry);
    const mine = () => this.#running.get(id) === entry;
    let command: string;
    try {
      command = withEnvironment(rec.task.command, rec.task.environment, this.#envSite);
    } catch (err) {
      void this.#ended(id, undefined, (err as Error).message);
      return;
    }
    const stages = this.#stages;
    const run = (cwd: string) =>
      this.#spawnerFor().run(
        {
          dir,
          cwd,
          command,
          env: rec.task.env,
          life: lifeOf(rec),
          ...(how.reuse ? { reuse: true } : {}),
        },
        {
          ...(stages ? { sent: () => stages.mark(id, 'sent') } : {}),
          started: (pid) => {
            stages?.mark(id, 'pid');
            // After the lines read with it: an exit among them is recorded with the start.
            if (entry.pendingRunning) queueMicrotask(() => this.#issueRunning(id, entry));
            if (entry.killOnStart) signalGroup(pid, 'SIGKILL');
            this.#stats.spawned++;
            if (!mine() || entry.adopted) return;
            entry.pid = pid;
            entry.lostBeforeStart = undefined;
            if (entry.terminate) this.#terminate(id, entry.terminate, pid);
          },
          ended: (end) => {
            if (stages && end.kind === 'exit') {
              stages.mark(id, 'exit');
              const t = end.times;
              if (t) stages.spawner(id, t.readNs, t.spawnedNs, t.reapedNs, t.cpuUs);
            }
            if (mine()) this.#spawnEnded(id, entry, end);
            // A copy started here, killed: its folder goes (not one another start claimed).
            else if (entry.dropped && end.kind !== 'claimed')
              this.#removeDropped(id, dir, lifeOf(rec));
          },
        },
      );
    if (this.#staging && rec.task.files)
      this.#staging.stageIn(rec).then(
        (cwd) => {
          // Killed or timed out while its inputs were on their way: never started.
          if (mine() && this.#c.get(id)?.state === 'running') run(cwd);
          else if (mine()) void this.#ended(id, undefined, 'ended before it started');
        },
        (err: unknown) => {
          if (mine())
            void this.#ended(
              id,
              undefined,
              `could not stage the task's declared inputs: ${(err as Error).message}`,
            );
        },
      );
    else run(rec.task.cwd);
    if (how.timeout !== false) this.#armTimeout(id, rec, handle);
  }

  #armTimeout(id: string, rec: TaskRecord, handle: LocalHandle): void {
    const ms = rec.task.timeoutMs;
    const entry = this.#running.get(id);
    if (ms === undefined || !entry) return;
    const left = Math.max(0, handle.startedAt + ms - Date.now());
    entry.timer = setTimeout(() => {
      void this.#c
        .advance(id, ['running'], 'failed', {
          exitCode: null,
          reason: `timed out after ${ms} ms`,
          stopping: true,
        })
        .then((r) => {
          if (r) this.#terminate(id, r);
        });
    }, left);
  }

  #spawnEnded(id: string, entry: Running, end: SpawnEnd): void {
    if (end.kind === 'exit') void this.#ended(id, end.code);
    else if (end.kind === 'signal') void this.#ended(id, undefined, `ended by ${end.signal}`);
    else if (end.kind === 'failed')
      void this.#ended(id, undefined, `could not start the task: ${end.error}`);
    else if (end.kind === 'claimed') {
      this.#issueRunning(id, entry);
      this.#followClaimed(id, entry);
    } else if (!entry.adopted) {
      this.#issueRunning(id, entry);
      // The spawner died; the task lives on in its own session: follow it through its folder.
      // Without a pid yet it may never have started: start it once more after the grace period.
      if (!entry.pid) entry.lostBeforeStart = (entry.lostBeforeStart ?? 0) + 1;
      if ((entry.lostBeforeStart ?? 0) > 1) {
        void this.#ended(id, undefined, 'could not start the task: the task spawner died twice');
        return;
      }
      entry.adopted = true;
      entry.startBy = entry.pid ? undefined : performance.now() + this.#startGraceMs;
      this.#ensurePoller();
    }
  }

  async #ended(id: string, code: number | undefined, why?: string): Promise<void> {
    const entry = this.#running.get(id);
    if (!entry) return;
    clearTimeout(entry.timer);
    this.#running.delete(id);
    this.#stopping.get(id)?.();
    this.#stages?.mark(id, 'lane-free');
    this.#pump();
    // Started before its running record, not written yet: one write for both.
    const pending = entry.pendingRunning;
    entry.pendingRunning = undefined;
    const together = this.#endTogether();
    const startedAt = (pending?.handle ?? localHandle(this.#c.get(id)?.handle))?.startedAt;
    this.#lastRanMs = startedAt === undefined ? undefined : Date.now() - startedAt;
    if (together) await together;
    try {
      if (pending) {
        await this.#recordStartedAndEnded(id, entry, pending, await this.#endOf(id, code, why));
        return;
      }
      // Started before its running record: that goes first, or this copy was dropped.
      if (entry.recorded && !(await entry.recorded)) return;
      const end = await this.#endOf(id, code, why);
      await this.#c.advance(id, ['running'], end.to, end.patch);
    } catch (err) {
      this.#c.log('error', 'could not record the end of a task', { taskId: id, err: String(err) });
    }
  }

  /** The end record of a task that exited with `code` (undefined: none, for `why`). */
  async #endOf(id: string, code: number | undefined, why?: string): Promise<EndRecord> {
    const rec = this.#c.get(id);
    const missing =
      code === 0 && this.#staging && rec?.task.files
        ? await this.#staging
            .stageOut(rec)
            .catch((err: unknown) => `could not bring back the outputs: ${(err as Error).message}`)
        : undefined;
    if (missing) return { to: 'failed', patch: { exitCode: 0, reason: missing } };
    if (code === 0) return { to: 'finished', patch: { exitCode: 0 } };
    if (code === undefined)
      return {
        to: 'failed',
        patch: { exitCode: null, reason: why ?? 'ended without an exit code' },
      };
    if (this.#staging && rec?.task.files?.auxiliaries?.length)
      await this.#staging.stageFailed(rec).catch((err: unknown) =>
        this.#c.log('warn', 'could not bring back the auxiliaries of a failed task', {
          taskId: id,
          err: String(err),
        }),
      );
    return {
      to: 'failed',
      patch: { exitCode: code, reason: exitReason(code, this.#c.get(id)?.task) },
    };
  }

  /** SIGTERM to the task's process group, SIGKILL after the grace period if it is still there. */
  #terminate(id: string, rec: TaskRecord, knownPid?: number): void {
    const h = localHandle(rec.handle);
    const entry = this.#running.get(id);
    const pid = knownPid || entry?.pid || (h ? readPidFile(h.dir)?.pid : undefined);
    if (rec.stopping) this.#clearWhenGone(id, pid);
    if (!pid) {
      // Spawned, its pid not known yet: signal it as soon as it is.
      if (entry) entry.terminate = rec;
      return;
    }
    const leaderStart = startTimeOf(pid);
    if (!signalGroup(pid, 'SIGTERM')) return;
    setTimeout(() => {
      // The group may outlive its leader (the wrapper dies of SIGTERM, a child that ignores it
      // goes on), and the kernel never reuses a group's id while a member lives: SIGKILL the
      // group unless the leader's pid now names another process (recycled).
      const now = startTimeOf(pid);
      if (now === undefined || now === leaderStart) signalGroup(pid, 'SIGKILL');
    }, this.#killGraceMs).unref();
  }

  /**
   * Takes `stopping` off an ended task's record once nothing of it runs: no live process is left
   * in its group (the spawner reaps the leader; a child that trapped SIGTERM lives on until the
   * SIGKILL after the grace period), or it never started. Looked at when its leader's end is
   * reported, else polled, only while such a task ended moments ago; not once the backend is
   * closed (a restarted runner adopts the record and watches again).
   */
  #clearWhenGone(id: string, knownPid?: number): void {
    if (this.#stopping.has(id)) return;
    let timer: NodeJS.Timeout | undefined;
    const tick = () => {
      clearTimeout(timer);
      const rec = this.#c.get(id);
      if (this.#closed || !rec?.stopping) {
        this.#stopping.delete(id);
        return;
      }
      const entry = this.#running.get(id);
      const h = localHandle(rec.handle);
      const pid = entry?.pid || knownPid || (h ? readPidFile(h.dir)?.pid : undefined);
      // Spawned, its pid not known yet: it is signalled once it is (#terminate), then gone.
      const starting = entry !== undefined && !pid;
      if (starting || (pid !== undefined && groupAlive(pid))) {
        timer = setTimeout(tick, GONE_POLL_MS).unref();
        return;
      }
      this.#stopping.delete(id);
      void this.#c.update(id, { stopping: undefined }).catch((err: unknown) =>
        this.#c.log('warn', 'could not record that a stopped task is gone', {
          taskId: id,
          err: String(err),
        }),
      );
    };
    this.#stopping.set(id, tick);
    timer = setTimeout(tick, 0).unref();
  }

  #reattach(rec: TaskRecord): void {
    const id = rec.task.taskId;
    const h = localHandle(rec.handle);
    if (!h) {
      // Recorded running by an older runner without a handle: nothing to find it by.
      void this.#c.advance(id, ['running'], 'failed', {
        exitCode: null,
        reason: 'the runner restarted and found no task folder for this task',
      });
      return;
    }
    this.#stats.adopted++;
    const entry: Running = {
      pid: 0,
      adopted: true,
      startBy: performance.now() + this.#startGraceMs,
    };
    this.#running.set(id, entry);
    this.#armTimeout(id, rec, h);
    this.#check(id, rec, h);
  }

  #ensurePoller(): void {
    if (this.#poller || this.#closed) return;
    this.#poller = setInterval(() => {
      for (const [id, entry] of this.#running) {
        if (!entry.adopted) continue;
        const rec = this.#c.get(id);
        const h = rec && localHandle(rec.handle);
        if (rec && h) this.#check(id, rec, h);
      }
    }, this.#pollMs);
  }

  // One look at an adopted task: ended (exit file), still running (its process), never started
  // (no pid file after the grace period: start it now), or gone without a trace.
  #check(id: string, rec: TaskRecord, h: LocalHandle): void {
    const entry = this.#running.get(id);
    if (!entry?.adopted) return;
    const code = readExit(h.dir);
    if (code !== undefined) {
      this.#stats.collectedAfterRestart++;
      void this.#ended(id, code);
      return;
    }
    const p = readPidFile(h.dir);
    if (p !== undefined) {
      entry.startBy = undefined;
      entry.pid = p.pid;
      if (isTaskProcess(p, h.dir)) {
        if (entry.terminate) this.#terminate(id, entry.terminate, p.pid);
        entry.terminate = undefined;
        return;
      }
      // It may have written its exit file between our two reads; a task started without a
      // wrapper has its exit file written by its spawner after it ended: give that the grace
      // period before calling the exit code lost.
      const late = readExit(h.dir);
      if (late !== undefined) {
        this.#stats.collectedAfterRestart++;
        void this.#ended(id, late);
        return;
      }
      entry.endBy ??= performance.now() + this.#startGraceMs;
      if (performance.now() >= entry.endBy)
        void this.#ended(
          id,
          undefined,
          'the process ended without writing an exit code (killed while the runner was down, or its task spawner killed while it ran?)',
        );
      return;
    }
    if (entry.startBy !== undefined && performance.now() >= entry.startBy) {
      if (rec.state !== 'running') {
        // Killed (or timed out) while it waited: never start it.
        clearTimeout(entry.timer);
        this.#running.delete(id);
        this.#pump();
        return;
      }
      // Output files but no pid file: the spawn happened (the task's own process makes them)
      // and its spawner died before writing the pid. It may be running or have run: never
      // started twice.
      if (entry.neverStart) {
        void this.#ended(
          id,
          undefined,
          'its folder was claimed by another start of this run of the task, which never started it (its spawner died?): it is not started again',
        );
        return;
      }
      if (existsSync(join(h.dir, 'stdout'))) {
        void this.#ended(
          id,
          undefined,
          'its task spawner died as it started the task, before recording its pid: it may have run, so it is not started again',
        );
        return;
      }
      // Recorded running, but the runner (or spawner) died before the task started: start
      // it once now.
      entry.adopted = false;
      entry.startBy = undefined;
      clearTimeout(entry.timer);
      this.#stats.startedAfterRestart++;
      this.#spawn(rec, h, { reuse: true });
    }
  }
}

type RunningPatch = { handle: LocalHandle; stdoutPath: string; stderrPath: string };
/** How a task's end is recorded. */
type EndRecord = { to: 'finished' | 'failed'; patch: RecordPatch };

/** The exit code the wrapper wrote, or undefined while there is none (or only part of one). */
export function readExit(dir: string): number | undefined {
  try {
    const text = readFileSync(join(dir, 'exit'), 'utf8');
    if (!/^\d+\n$/.test(text)) return undefined;
    return Number(text.trim());
  } catch {
    return undefined;
  }
}
