import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, unlinkSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import type { LocalResource, TaskRecord, TaskState } from '@computepods/protocol';
import type { Backend, BackendContext, LogStream } from './backend.js';
import { UnsafeValueError } from './errors.js';
import { type LocalHandle, localHandle } from './handle.js';
import { isOurProcess, signalGroup } from './process-group.js';
import { readTail } from './read-tail.js';

export interface LocalBackendOptions {
  readonly resource: LocalResource;
  /** Parent of the task folders; default the resource's jobs_local_dir. */
  readonly jobsDir?: string;
  /** Tasks running at once; default parallel_tasks_per_job, else one per CPU core. */
  readonly parallel?: number;
  /** Between SIGTERM and SIGKILL when a task is killed or times out (default 5 s). */
  readonly killGraceMs?: number;
  /** How often processes adopted after a restart are checked (default jobs_poll_interval, ≥ 0.2 s). */
  readonly pollMs?: number;
  /** How long an adopted running task may lack its pid file before it is started (default 2 s). */
  readonly startGraceMs?: number;
  /** Base environment of every task (default the runner's own); task.env is laid over it. */
  readonly env?: NodeJS.ProcessEnv;
}

// The wrapper outlives the runner: it is its own session and process group (detached), its
// output goes to files (a dead runner's pipes would SIGPIPE it), and it writes the exit code
// to a file, so a runner restarted after kill -9 collects the result instead of running the
// task twice. `echo` is one write(2), so a reader sees the whole line or nothing. The command
// runs as `sh -c` would run it, but in a forked subshell (eval) instead of a new sh: one exec
// less per task; positional parameters are cleared first. A TERM/KILL to the group ends the
// wrapper too: then there is no exit file, and the record already says why.
const WRAPPER =
  'echo $$ > "$1/pid"; (__cp=$2; shift $#; eval "unset __cp; $__cp"); c=$?; echo $c > "$1/exit"; exit $c';

interface Running {
  pid: number;
  child?: ChildProcess;
  timer?: NodeJS.Timeout;
  /** Adopted after a restart: not our child, so its end is found by polling. */
  adopted: boolean;
  /** Adopted as running without a pid file yet: start it if none shows up by then. */
  startBy?: number;
}

/**
 * Local processes, at most `parallel` at once. Tasks wait in FIFO order (state submitted);
 * each runs detached in its own process group under a wrapper that records pid and exit code
 * in the task folder `<jobsDir>/<taskId>/` (pid, exit, stdout, stderr).
 */
export class LocalBackend implements Backend {
  readonly type = 'local' as const;
  readonly jobsDir: string;
  readonly parallel: number;
  readonly #killGraceMs: number;
  readonly #pollMs: number;
  readonly #startGraceMs: number;
  readonly #env: NodeJS.ProcessEnv;
  #ctx: BackendContext | undefined;
  readonly #queue: string[] = [];
  readonly #running = new Map<string, Running>();
  #poller: NodeJS.Timeout | undefined;
  #closed = false;
  readonly #stats = { spawned: 0, adopted: 0, collectedAfterRestart: 0, startedAfterRestart: 0 };

  constructor(options: LocalBackendOptions) {
    const r = options.resource;
    this.jobsDir = options.jobsDir ?? r.jobs_local_dir;
    this.parallel =
      options.parallel ?? r.jobs_runner_config.parallel_tasks_per_job ?? availableParallelism();
    this.#killGraceMs = options.killGraceMs ?? 5_000;
    this.#pollMs = options.pollMs ?? Math.max(200, r.jobs_poll_interval * 1000);
    this.#startGraceMs = options.startGraceMs ?? 2_000;
    this.#env = options.env ?? process.env;
  }

  bind(ctx: BackendContext): void {
    this.#ctx = ctx;
  }

  get #c(): BackendContext {
    if (!this.#ctx) throw new Error('LocalBackend used before Executor bound it');
    return this.#ctx;
  }

  enqueue(rec: TaskRecord): void {
    const id = rec.task.taskId;
    void this.#c.advance(id, ['created'], 'submitted').then(
      (r) => {
        if (!r) return;
        this.#queue.push(id);
        this.#pump();
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
    if (rec.state === 'submitted') {
      this.#queue.push(rec.task.taskId);
      this.#pump();
    }
  }

  async kill(rec: TaskRecord, from: TaskState): Promise<void> {
    const id = rec.task.taskId;
    this.#dequeue(id);
    if (from === 'running') this.#terminate(id, rec);
  }

  async adopt(recs: readonly TaskRecord[]): Promise<void> {
    for (const rec of recs) {
      const id = rec.task.taskId;
      if (rec.state === 'created') this.enqueue(rec);
      // Never recorded running, so never started: start it now.
      else if (rec.state === 'submitted') this.#queue.push(id);
      else if (rec.state === 'running') this.#reattach(rec);
      else if (rec.state === 'killed' || rec.state === 'failed') {
        // Recorded killed (or timed out) but the runner died before it could act: act now.
        const h = localHandle(rec.handle);
        const pid = h ? this.#readPid(h.dir) : undefined;
        if (h && pid && isOurProcess(pid, h.dir)) this.#terminate(id, rec, pid);
      }
    }
    this.#pump();
    this.#ensurePoller();
  }

  async logs(rec: TaskRecord, stream: LogStream, maxBytes: number): Promise<string> {
    const path = stream === 'stdout' ? rec.stdoutPath : rec.stderrPath;
    if (!path) return '';
    return readTail(path, maxBytes);
  }

  stats(): Readonly<Record<string, number>> {
    return { ...this.#stats, running: this.#running.size, queued: this.#queue.length };
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#poller);
    for (const r of this.#running.values()) clearTimeout(r.timer);
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

  #dequeue(id: string): void {
    const i = this.#queue.indexOf(id);
    if (i >= 0) this.#queue.splice(i, 1);
  }

  #pump(): void {
    while (!this.#closed && this.#running.size < this.parallel && this.#queue.length > 0) {
      const id = this.#queue.shift()!;
      // Reserve the slot before the (async) record, or the pool would overfill.
      this.#running.set(id, { pid: 0, adopted: false });
      void this.#start(id);
    }
  }

  async #start(id: string): Promise<void> {
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
    const handle: LocalHandle = { kind: 'local', dir, startedAt: Date.now() };
    let rec: TaskRecord | undefined;
    try {
      rec = await this.#c.advance(id, ['submitted'], 'running', {
        handle,
        stdoutPath: join(dir, 'stdout'),
        stderrPath: join(dir, 'stderr'),
      });
    } catch (err) {
      this.#c.log('error', 'could not record a task as running; it stays queued', {
        taskId: id,
        err: String(err),
      });
      this.#running.delete(id);
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
    this.#spawn(rec, handle);
  }

  #spawn(rec: TaskRecord, handle: LocalHandle): void {
    const id = rec.task.taskId;
    const dir = handle.dir;
    const entry: Running = this.#running.get(id) ?? { pid: 0, adopted: false };
    this.#running.set(id, entry);
    let child: ChildProcess;
    try {
      mkdirSync(dir, { recursive: true });
      for (const stale of ['exit', 'pid']) rmQuiet(join(dir, stale));
      const out = openSync(join(dir, 'stdout'), 'w');
      const err = openSync(join(dir, 'stderr'), 'w');
      try {
        child = spawn('/bin/sh', ['-c', WRAPPER, 'sh', dir, rec.task.command], {
          cwd: rec.task.cwd,
          env: { ...this.#env, ...rec.task.env },
          detached: true,
          stdio: ['ignore', out, err],
        });
      } finally {
        closeSync(out);
        closeSync(err);
      }
    } catch (err) {
      void this.#ended(id, undefined, `could not start the task: ${(err as Error).message}`);
      return;
    }
    this.#stats.spawned++;
    entry.child = child;
    entry.pid = child.pid ?? 0;
    child.once('error', (err) => {
      // spawn failures (a cwd that does not exist...) arrive here, not as an exit
      void this.#ended(id, undefined, `could not start the task: ${err.message}`);
    });
    child.once('exit', (code, signal) => {
      if (code !== null) void this.#ended(id, code);
      else void this.#ended(id, undefined, `ended by ${signal ?? 'a signal'}`);
    });
    this.#armTimeout(id, rec, handle);
  }

  #armTimeout(id: string, rec: TaskRecord, handle: LocalHandle): void {
    const ms = rec.task.timeoutMs;
    const entry = this.#running.get(id);
    if (ms === undefined || !entry) return;
    const left = Math.max(0, handle.startedAt + ms - Date.now());
    entry.timer = setTimeout(() => {
      void this.#c
        .advance(id, ['running'], 'failed', { exitCode: null, reason: `timed out after ${ms} ms` })
        .then((r) => {
          if (r) this.#terminate(id, r);
        });
    }, left);
  }

  async #ended(id: string, code: number | undefined, why?: string): Promise<void> {
    const entry = this.#running.get(id);
    if (!entry) return;
    clearTimeout(entry.timer);
    this.#running.delete(id);
    this.#pump();
    try {
      if (code === 0) await this.#c.advance(id, ['running'], 'finished', { exitCode: 0 });
      else if (code !== undefined)
        await this.#c.advance(id, ['running'], 'failed', {
          exitCode: code,
          reason: `exit code ${code}`,
        });
      else
        await this.#c.advance(id, ['running'], 'failed', {
          exitCode: null,
          reason: why ?? 'ended without an exit code',
        });
    } catch (err) {
      this.#c.log('error', 'could not record the end of a task', { taskId: id, err: String(err) });
    }
  }

  /** SIGTERM to the task's process group, SIGKILL after the grace period if it is still there. */
  #terminate(id: string, rec: TaskRecord, knownPid?: number): void {
    const h = localHandle(rec.handle);
    const pid = knownPid || this.#running.get(id)?.pid || (h ? this.#readPid(h.dir) : undefined);
    if (!pid) return;
    if (!signalGroup(pid, 'SIGTERM')) return;
    setTimeout(() => {
      if (!h || isOurProcess(pid, h.dir)) signalGroup(pid, 'SIGKILL');
    }, this.#killGraceMs).unref();
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
    const entry: Running = { pid: 0, adopted: true, startBy: Date.now() + this.#startGraceMs };
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

  // One look at an adopted task: ended (exit file), still running (our pid), never started
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
    const pid = this.#readPid(h.dir);
    if (pid !== undefined) {
      entry.startBy = undefined;
      entry.pid = pid;
      if (isOurProcess(pid, h.dir)) return;
      // It may have written its exit file between our two reads.
      const late = readExit(h.dir);
      if (late !== undefined) {
        this.#stats.collectedAfterRestart++;
        void this.#ended(id, late);
      } else
        void this.#ended(
          id,
          undefined,
          'the process ended without writing an exit code (killed while the runner was down?)',
        );
      return;
    }
    if (entry.startBy !== undefined && Date.now() >= entry.startBy) {
      // Recorded running, but the runner died before the wrapper started: start it once now.
      entry.adopted = false;
      entry.startBy = undefined;
      clearTimeout(entry.timer);
      this.#stats.startedAfterRestart++;
      this.#spawn(rec, h);
    }
  }

  #readPid(dir: string): number | undefined {
    try {
      const text = readFileSync(join(dir, 'pid'), 'utf8');
      if (!text.endsWith('\n')) return undefined;
      const pid = Number(text.trim());
      return Number.isInteger(pid) && pid > 1 ? pid : undefined;
    } catch {
      return undefined;
    }
  }
}

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

function rmQuiet(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // absent: nothing stale to remove
  }
}
