import { randomBytes } from 'node:crypto';
import { posix } from 'node:path';
import {
  CpError,
  type SlurmSshResource,
  type SlurmSudoResource,
  slurmMemToMb,
  type TaskRecord,
  type TaskState,
} from '@computepods/protocol';
import { commandPath } from '@computepods/transport';
import type { Backend, BackendContext, LogRead, LogStream, UnpublishedLogs } from './backend.js';
import { isRetryable, ResourceCommandError, TaskNotFoundError } from './errors.js';
import { type SlurmHandle, slurmHandle } from './handle.js';
import { isTerminal } from './lifecycle.js';
import { LogReads } from './log-reads.js';
import { PeriodicSweep } from './periodic-sweep.js';
import { Poller } from './poller.js';
import { DEFAULT_RETRY, type RetryPolicy, withRetry } from './retry.js';
import { chunk, planBatches } from './slurm-batching.js';
import { type JobTree, mergeTrees, taskTree, workDirOf } from './slurm-files.js';
import { commandFailed, ensureOk, type SlurmHost } from './slurm-host.js';
import {
  abnormalEnd,
  jobPhase,
  parseScan,
  parseSqueue,
  SCAN_SCRIPT,
  type ScanResult,
  squeueArgs,
} from './slurm-queue.js';
import { effectiveConfig, jobScript, resolveExports, sbatchArgs } from './slurm-script.js';
import { DEFAULT_KEEP, type KeepPolicy, planSweep, SWEEP_LIST_SCRIPT } from './slurm-sweep.js';
import { type EnvironmentSite, exitReason, withEnvironment } from './task-environment.js';
import { fetchAuxiliaries, fetchOutputs } from './task-staging.js';

export interface SlurmBackendOptions {
  readonly resource: SlurmSudoResource | SlurmSshResource;
  readonly host: SlurmHost;
  /** Job folders as the cluster sees them: jobs_local_dir (sudo) or jobs_remote_dir (SSH). */
  readonly jobsDir: string;
  /** Base of relative user_local_exports: tasks_local_dir (sudo) or tasks_remote_dir (SSH). */
  readonly tasksDir: string;
  /** Between two status polls; default jobs_poll_interval (at least 0.2 s). */
  readonly pollMs?: number;
  /** How long new tasks are gathered before they are batched into jobs (default 0.5 s). */
  readonly batchWindowMs?: number;
  /** Retries of sbatch, squeue ... before the tasks concerned are paused. */
  readonly retry?: RetryPolicy;
  /** How long finished job folders are kept (see slurm-sweep.ts; default DEFAULT_KEEP). */
  readonly keep?: KeepPolicy;
  /** Between two sweeps of finished job folders (default 60 s; the first comes after adopt). */
  readonly sweepEveryMs?: number;
  /** Tasks whose logs are still being published: their job folders are not swept. */
  readonly unpublishedLogs?: UnpublishedLogs | undefined;
  /** Polls that must agree a job is gone without a task's exit code before it fails (default 2). */
  readonly confirmPolls?: number;
}

interface Job {
  readonly key: string;
  readonly dir: string;
  readonly gpu: boolean;
  readonly lanes: number;
  /** index → task id */
  readonly members: Map<number, string>;
  jobId?: string;
  held: boolean;
  launching?: Promise<void>;
  /** A pause's marker and hold, applied once the launch ended (see pause). */
  pausing?: Promise<void>;
  /** index → polls in a row that found the job gone and no exit code */
  readonly gone: Map<number, number>;
  /** index → polls in a row that found the task started while its job waits again (requeued) */
  readonly requeued: Map<number, number>;
  /** index → collections in a row the transport failed (bounded: then the task pauses) */
  readonly collectFailures: Map<number, number>;
  /** fetches of the job folder in a row the transport failed (bounded: then it stays there) */
  fetchFailures: number;
  localDir?: string;
}

const LIVE: readonly TaskState[] = ['submitted', 'running'];

/**
 * SLURM through sbatch/squeue/scontrol/scancel, as the profile's user (sudo or SSH). New
 * tasks are gathered for a short window and packed into few jobs (batching_config); each job
 * runs its tasks in lanes, every task with its own output, pid and exit-code files. One
 * squeue per poll covers every job of the resource; a job missing from squeue is only given
 * up after scontrol and the exit-code files agree, on two polls in a row.
 */
export class SlurmBackend implements Backend {
  readonly type: 'slurm_sudo' | 'slurm_ssh';
  readonly #o: SlurmBackendOptions;
  readonly #host: SlurmHost;
  readonly #logReads: LogReads;
  readonly #retry: RetryPolicy;
  readonly #pollMs: number;
  readonly #windowMs: number;
  readonly #confirm: number;
  readonly #c: BackendContext;
  #pending: string[] = [];
  #flushTimer: NodeJS.Timeout | undefined;
  readonly #jobs = new Map<string, Job>();
  readonly #toFetch = new Set<Job>();
  readonly #poller: Poller;
  #pollFailures = 0;
  readonly #sweeper: PeriodicSweep;
  #closed = false;
  readonly #stats = {
    sbatch: 0,
    squeue: 0,
    scontrol: 0,
    scancel: 0,
    scans: 0,
    fetches: 0,
    jobs: 0,
    pollFailures: 0,
    swept: 0,
  };

  constructor(options: SlurmBackendOptions, ctx: BackendContext) {
    this.#c = ctx;
    this.#o = options;
    this.type = options.resource.type;
    this.#host = options.host;
    this.#logReads = new LogReads((argv) => this.#host.run(argv));
    this.#retry = options.retry ?? DEFAULT_RETRY;
    this.#pollMs = options.pollMs ?? Math.max(200, options.resource.jobs_poll_interval * 1000);
    this.#poller = new Poller({
      poll: () => this.#poll(),
      more: () =>
        this.#toFetch.size > 0 ||
        [...this.#jobs.values()].some((j) => this.#liveMembers(j, LIVE).length > 0),
      everyMs: this.#pollMs,
      failures: () => this.#pollFailures,
      retry: this.#retry,
      onError: (err) => this.#c.log('error', 'poll failed', { err: String(err) }),
    });
    this.#windowMs = options.batchWindowMs ?? 500;
    this.#confirm = options.confirmPolls ?? 2;
    this.#sweeper = new PeriodicSweep({
      run: () => this.#sweep(),
      everyMs: options.sweepEveryMs ?? 60_000,
      onError: (err) =>
        this.#c.log('warn', 'could not sweep finished job folders', { err: String(err) }),
    });
  }

  enqueue(rec: TaskRecord): void {
    this.#pending.push(rec.task.taskId);
    this.#flushTimer ??= setTimeout(() => {
      this.#flushTimer = undefined;
      void this.#flush();
    }, this.#windowMs);
  }

  async pause(rec: TaskRecord): Promise<void> {
    const id = rec.task.taskId;
    if (rec.pausedFrom === 'created') {
      this.#pending = this.#pending.filter((p) => p !== id);
      return;
    }
    if (rec.pausedFrom !== 'submitted') return; // running: only stop watching (poll skips it)
    const h = slurmHandle(rec.handle);
    const job = h && this.#jobs.get(h.jobKey);
    if (!h || !job) return;
    // Never awaited here: the executor calls pause holding the task's turn, and the launch
    // records the job id in that same turn (a deadlock: the pause and every later control of
    // the task hung). The marker follows the launch instead, if the task is still paused then.
    if (job.launching) {
      job.pausing = job.launching.then(() => {
        if (this.#c.get(id)?.state === 'paused') return this.#holdPaused(job, h, id);
      });
      return;
    }
    await this.#holdPaused(job, h, id);
  }

  async #holdPaused(job: Job, h: SlurmHandle, id: string): Promise<void> {
    try {
      // The job may start before the hold lands: the marker keeps this task from starting.
      await this.#markers([`${h.dir}/${h.index}.skip`]);
      if (
        job.jobId &&
        !job.held &&
        this.#c.get(id)?.state === 'paused' &&
        this.#liveMembers(job, ['submitted', 'running']).length === 0
      ) {
        this.#stats.scontrol++;
        const res = await this.#host.slurm(['scontrol', 'hold', job.jobId]);
        if (res.code === 0) job.held = true;
      }
    } catch (err) {
      // Harmless: a paused task is not watched; if its job runs it anyway, the result is
      // collected after resume.
      this.#c.log('warn', 'could not hold a paused task in its job', {
        taskId: id,
        err: String(err),
      });
    }
  }

  async resume(rec: TaskRecord): Promise<void> {
    if (rec.state !== 'submitted') {
      this.#ensurePolling();
      return;
    }
    const job = this.#jobOf(rec);
    const h = slurmHandle(rec.handle);
    // Resumed while its job is still being launched: it stays in that job (rebatched, it would
    // run in two). Not awaited here either (see pause).
    if (job?.launching) {
      void job.launching.then(() => {
        if (this.#c.get(rec.task.taskId)?.state === 'submitted') return this.resume(rec);
      });
      return;
    }
    // A pause whose hold followed the launch may still be on its way: it ends first, so the
    // hold it puts on the job is released here and not left after the resume.
    await job?.pausing;
    if (!job || !h || !job.jobId) {
      this.#rebatch(rec.task.taskId);
      return;
    }
    const rm = await this.#host.run([
      'rm',
      '-f',
      '--',
      commandPath(`${h.dir}/${h.index}.skip`, 'skip marker'),
    ]);
    ensureOk('rm skip marker', rm);
    if (job.held) {
      this.#stats.scontrol++;
      const res = await this.#host.slurm(['scontrol', 'release', job.jobId]);
      if (res.code === 0) job.held = false;
    }
    // If the job skipped this task meanwhile, the next poll sees <index>.skipped and resubmits it.
    this.#ensurePolling();
  }

  async kill(rec: TaskRecord, from: TaskState): Promise<void> {
    const id = rec.task.taskId;
    this.#pending = this.#pending.filter((p) => p !== id);
    if (from === 'created') return;
    const job = this.#jobOf(rec);
    const h = slurmHandle(rec.handle);
    if (!job || !h) return;
    // Not awaited while the executor holds the task's turn (see pause): the markers and the
    // scancel follow the launch.
    if (job.launching) {
      void job.launching
        .then(() => this.kill(rec, from))
        .catch((err: unknown) =>
          this.#c.log('warn', 'could not kill a task after its job was launched', {
            taskId: id,
            err: String(err),
          }),
        );
      return;
    }
    await withRetry(this.#retry, async () => {
      await this.#markers([`${h.dir}/${h.index}.skip`, `${h.dir}/${h.index}.kill`]);
      if (
        job.jobId &&
        /^\d+$/.test(job.jobId) &&
        this.#liveMembers(job, ['submitted', 'running', 'paused']).length === 0
      ) {
        this.#stats.scancel++;
        const res = await this.#host.slurm(['scancel', job.jobId]);
        // A job that ended meanwhile has nothing left to cancel.
        if (!/already completing or completed|Invalid job id/i.test(res.stderr))
          ensureOk('scancel', res);
      }
    });
  }

  async adopt(recs: readonly TaskRecord[]): Promise<void> {
    for (const rec of recs) {
      const id = rec.task.taskId;
      const h = slurmHandle(rec.handle);
      if (rec.state === 'created') {
        this.enqueue(rec);
        continue;
      }
      if (!h) {
        if (rec.state === 'submitted') this.#rebatch(id);
        continue;
      }
      let job = this.#jobs.get(h.jobKey);
      if (!job) {
        job = {
          key: h.jobKey,
          dir: h.dir,
          gpu: rec.task.gpu,
          lanes: 1,
          members: new Map(),
          held: false,
          gone: new Map(),
          requeued: new Map(),
          collectFailures: new Map(),
          fetchFailures: 0,
          ...(h.localDir ? { localDir: h.localDir } : {}),
        };
        this.#jobs.set(h.jobKey, job);
      }
      job.members.set(h.index, id);
      // A SLURM job id is a number; anything else would reach scancel as an argument.
      if (rec.jobId && /^[0-9]+$/.test(rec.jobId)) job.jobId = rec.jobId;
    }
    for (const job of this.#jobs.values()) {
      if (job.jobId) continue;
      job.launching = this.#recoverUnsubmitted(job).finally(() => {
        job.launching = undefined;
      });
    }
    for (const rec of recs) {
      // Recorded killed, but the runner may have died before it acted: act again.
      if (rec.state === 'killed' && slurmHandle(rec.handle))
        await this.kill(rec, 'running').catch((err: unknown) =>
          this.#c.log('warn', 'could not re-apply a kill after restart', { err: String(err) }),
        );
    }
    this.#ensurePolling();
    this.#sweeper.start();
  }

  async logs(rec: TaskRecord, stream: LogStream, maxBytes: number): Promise<string> {
    const h = slurmHandle(rec.handle);
    if (!h) return '';
    const name = `${h.index}.${stream === 'stdout' ? 'out' : 'err'}`;
    if (h.localDir) {
      const { readTail } = await import('./read-tail.js');
      return readTail(posix.join(h.localDir, name), maxBytes);
    }
    const log = commandPath(`${h.dir}/${name}`, 'task log');
    const res = await this.#host.run(['tail', '-c', String(maxBytes), '--', log]);
    if (res.code !== 0) return '';
    return res.stdout;
  }

  // Read as the cluster's user where the job writes (sudo, or SSH through the pool), the reads
  // of every followed task gathered into one command (log-reads.ts).
  async readLog(
    rec: TaskRecord,
    stream: LogStream,
    offset: number,
    maxBytes: number,
  ): Promise<LogRead | undefined> {
    const h = slurmHandle(rec.handle);
    if (!h) return undefined;
    return this.#logReads.read(
      `${h.dir}/${h.index}.${stream === 'stdout' ? 'out' : 'err'}`,
      offset,
      maxBytes,
    );
  }

  stats(): Readonly<Record<string, number>> {
    return { ...this.#stats, activeJobs: this.#jobs.size, pending: this.#pending.length };
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#flushTimer);
    await this.#poller.close();
    await this.#sweeper.close();
    await this.#host.close();
  }

  // --- submission ---------------------------------------------------------------------

  #rebatch(taskId: string): void {
    this.#pending.push(taskId);
    this.#flushTimer ??= setTimeout(() => {
      this.#flushTimer = undefined;
      void this.#flush();
    }, this.#windowMs);
  }

  async #flush(): Promise<void> {
    if (this.#closed) return;
    const ids = [...new Set(this.#pending)];
    this.#pending = [];
    const groups = new Map<boolean, string[]>();
    for (const id of ids) {
      const rec = this.#c.get(id);
      if (!rec || (rec.state !== 'created' && rec.state !== 'submitted')) continue;
      const g = groups.get(rec.task.gpu) ?? [];
      g.push(id);
      groups.set(rec.task.gpu, g);
    }
    const launches: Promise<void>[] = [];
    for (const [gpu, group] of groups) {
      // A task that asks for a GPU never runs without one: with no gpu_slurm_config its job
      // would be an ordinary CPU job, and the task would fail (or crawl) for a reason nobody sees.
      if (gpu && !this.#o.resource.jobs_runner_config.gpu_slurm_config) {
        const reason = `the task asks for a GPU, but resource ${JSON.stringify(this.#o.resource.id)} has no jobs_runner_config.gpu_slurm_config; add one (e.g. gres: "gpu:1") or send the rule to a GPU resource`;
        for (const id of group) launches.push(this.#fail(id, reason));
        continue;
      }
      const cfg = effectiveConfig(this.#o.resource.jobs_runner_config, gpu);
      let plan: { tasksPerJob: number; parallelTasksPerJob: number };
      try {
        plan = planBatches(
          group.length,
          {
            cpusPerTask: cfg.cpus_per_task ?? 1,
            memPerTaskMb: cfg.mem === undefined ? undefined : slurmMemToMb(cfg.mem),
          },
          this.#o.resource.jobs_runner_config.batching_config,
        );
      } catch (err) {
        for (const id of group) launches.push(this.#fail(id, (err as Error).message));
        continue;
      }
      for (const ids of chunk(group, plan.tasksPerJob))
        launches.push(this.#submitJob(ids, gpu, Math.min(plan.parallelTasksPerJob, ids.length)));
    }
    await Promise.all(launches);
  }

  async #fail(id: string, reason: string): Promise<void> {
    await this.#c.advance(id, ['created', 'submitted'], 'failed', { exitCode: null, reason });
  }

  async #submitJob(ids: readonly string[], gpu: boolean, lanes: number): Promise<void> {
    const key = `${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
    const dir = posix.join(this.#o.jobsDir, key);
    const job: Job = {
      key,
      dir,
      gpu,
      lanes,
      members: new Map(),
      held: false,
      gone: new Map(),
      requeued: new Map(),
      collectFailures: new Map(),
      fetchFailures: 0,
    };
    // Recorded with its job folder before anything is staged or submitted: a restarted
    // runner finds the job by name (cp-<key>) or by its files, and never submits it twice.
    const recorded = await Promise.all(
      ids.map(async (id, index) => {
        const handle: SlurmHandle = { kind: 'slurm', jobKey: key, dir, index };
        const patch = {
          handle,
          stdoutPath: posix.join(dir, `${index}.out`),
          stderrPath: posix.join(dir, `${index}.err`),
        };
        try {
          const rec = this.#c.get(id);
          const r =
            rec?.state === 'submitted'
              ? await this.#c.update(id, { ...patch, jobId: undefined })
              : await this.#c.advance(id, ['created'], 'submitted', patch);
          return r ? ([index, id] as const) : undefined;
        } catch (err) {
          this.#c.log('error', 'could not record a task as submitted', {
            taskId: id,
            err: String(err),
          });
          return undefined;
        }
      }),
    );
    for (const m of recorded) if (m) job.members.set(m[0], m[1]);
    if (job.members.size === 0) return;
    this.#jobs.set(key, job);
    job.launching = this.#launch(job).finally(() => {
      job.launching = undefined;
    });
    await job.launching;
  }

  async #launch(job: Job): Promise<void> {
    // A task that declares its files runs in its own folder inside the job folder, with its
    // inputs staged there: the cluster needs no access to the pod's workspace. One whose
    // files cannot be staged fails alone; the rest of the batch goes on.
    const trees: JobTree[] = [];
    const commands = new Map<number, string>();
    for (const [index, id] of [...job.members]) {
      try {
        const { task } = this.#record(id);
        commands.set(index, withEnvironment(task.command, task.environment, this.#envSite()));
        trees.push(await taskTree(index, task));
      } catch (err) {
        job.members.delete(index);
        await this.#fail(id, (err as Error).message);
      }
    }
    if (job.members.size === 0) {
      this.#jobs.delete(job.key);
      return;
    }
    const tree = mergeTrees(trees);
    const members = [...job.members].map(([index, id]) => ({ index, task: this.#record(id).task }));
    const tasks = members.map(({ index, task: t }) => ({
      index,
      command: commands.get(index) ?? t.command,
      cwd: t.files ? workDirOf(job.dir, index) : t.cwd,
      env: t.env,
    }));
    const cfg = effectiveConfig(this.#o.resource.jobs_runner_config, job.gpu);
    const spec = {
      dir: job.dir,
      jobName: `cp-${job.key}`,
      tasks,
      lanes: job.lanes,
      config: cfg,
      exports: resolveExports(
        this.#o.resource.jobs_runner_config.user_local_exports,
        this.#o.tasksDir,
      ),
    };
    let script: string;
    let args: string[];
    try {
      script = jobScript(spec);
      args = sbatchArgs(spec, posix.join(job.dir, 'job.sh'));
    } catch (err) {
      await Promise.all(
        [...job.members.values()].map((id) => this.#fail(id, (err as Error).message)),
      );
      this.#jobs.delete(job.key);
      return;
    }
    try {
      const jobId = await withRetry(
        this.#retry,
        async (attempt) => {
          // A retried sbatch may have worked the first time with its answer lost.
          if (attempt > 1) {
            const found = await this.#findByName(job.key);
            if (found) return found;
          }
          await this.#host.stageJob(job.dir, { 'job.sh': script }, tree);
          this.#stats.sbatch++;
          const res = ensureOk('sbatch', await this.#host.slurm(['sbatch', ...args]));
          const id = res.stdout.trim().split(/[;\s]/)[0] ?? '';
          if (!/^\d+$/.test(id))
            throw new ResourceCommandError(
              'sbatch',
              res.code,
              `it answered ${JSON.stringify(res.stdout)}, not a job id`,
              false,
            );
          return id;
        },
        (err, attempt, delay) =>
          this.#c.log('warn', 'sbatch failed; retrying', {
            job: job.key,
            attempt,
            delay,
            err: String(err),
          }),
      );
      job.jobId = jobId;
      this.#stats.jobs++;
      await Promise.all([...job.members.values()].map((id) => this.#c.update(id, { jobId })));
      this.#ensurePolling();
    } catch (err) {
      this.#jobs.delete(job.key);
      for (const id of job.members.values()) {
        if (isRetryable(err)) await this.#c.pauseForError(id, err);
        else await this.#fail(id, (err as Error).message);
      }
    }
  }

  async #findByName(key: string): Promise<string | undefined> {
    this.#stats.squeue++;
    const res = await this.#host.slurm(
      squeueArgs({ name: `cp-${key}` }, '%i', { allStates: true }),
    );
    if (res.code !== 0) throw new ResourceCommandError('squeue', res.code, res.stderr, true);
    const id = res.stdout.trim().split('\n')[0]?.trim();
    return id && /^\d+$/.test(id) ? id : undefined;
  }

  // A job recorded before sbatch answered (the runner died in between): find it by name; if
  // SLURM does not know it and it left no files, it never ran, so submit it now.
  async #recoverUnsubmitted(job: Job): Promise<void> {
    try {
      const found = await withRetry(this.#retry, () => this.#findByName(job.key));
      if (found) {
        job.jobId = found;
        await Promise.all(
          [...job.members.values()].map((id) => this.#c.update(id, { jobId: found })),
        );
        return;
      }
      const scan = await this.#scan([job]);
      if (scan.has(job.dir, 'job.started')) {
        job.jobId = 'unknown';
        return;
      }
      for (const id of job.members.values()) this.#rebatch(id);
      this.#jobs.delete(job.key);
    } catch (err) {
      for (const id of job.members.values()) await this.#c.pauseForError(id, err);
    }
  }

  // --- polling ------------------------------------------------------------------------

  #ensurePolling(): void {
    this.#poller.ensure();
  }

  /** Polls now (tests and the runner's "refresh"); resolves when the poll is done. */
  pollNow(): Promise<void> {
    return this.#poller.now();
  }

  async #poll(): Promise<void> {
    const live = [...this.#jobs.values()].filter(
      (j): j is Job & { jobId: string } =>
        !!j.jobId && !j.launching && this.#liveMembers(j, LIVE).length > 0,
    );
    if (live.length > 0) {
      const ids = live.map((j) => j.jobId).filter((id) => /^\d+$/.test(id));
      let states: Map<string, { state: string; reason: string }>;
      try {
        states = ids.length ? await this.#squeue(ids) : new Map();
        // A job missing from squeue is asked to scontrol; one that cannot answer now makes
        // this poll a failed one, never a reason to take the job for gone.
        for (const j of live.filter((j) => !states.has(j.jobId))) {
          const s = await this.#scontrolState(j.jobId);
          if (s) states.set(j.jobId, s);
        }
        this.#pollFailures = 0;
      } catch (err) {
        // Never a reason to call a job finished: count it, back off, pause when it persists.
        this.#pollFailures++;
        this.#stats.pollFailures++;
        this.#c.log('warn', 'squeue failed', { failures: this.#pollFailures, err: String(err) });
        if (this.#pollFailures >= this.#retry.attempts || !isRetryable(err)) {
          this.#pollFailures = 0;
          for (const j of live)
            for (const id of this.#liveMembers(j, LIVE)) await this.#c.pauseForError(id, err);
        }
        return;
      }
      // A waiting job with a task recorded running was requeued (node failure, preemption):
      // its files say which tasks had started.
      const needFiles = live.filter(
        (j) =>
          jobPhase(states.get(j.jobId)?.state) !== 'pending' ||
          this.#liveMembers(j, ['running']).length > 0,
      );
      const scan = needFiles.length ? await this.#scan(needFiles) : undefined;
      for (const j of live) await this.#settle(j, states.get(j.jobId), scan);
    }
    for (const j of [...this.#toFetch]) await this.#fetch(j);
  }

  async #squeue(ids: readonly string[]): Promise<Map<string, { state: string; reason: string }>> {
    this.#stats.squeue++;
    const res = await this.#host.slurm(squeueArgs({ jobs: ids }, '%i|%T|%r', { allStates: true }));
    // squeue fails this way when none of the ids is known any more: an answer, not an error.
    if (res.code !== 0 && /Invalid job id specified/.test(res.stderr)) return new Map();
    return parseSqueue(ensureOk('squeue', res).stdout);
  }

  /**
   * The job's state from scontrol; undefined only when SLURM says it does not know the job
   * (past MinJobAge). Any other failure (controller down or busy) throws.
   */
  async #scontrolState(jobId: string): Promise<{ state: string; reason: string } | undefined> {
    if (!/^\d+$/.test(jobId)) return undefined;
    this.#stats.scontrol++;
    const res = await this.#host.slurm(['scontrol', '-o', 'show', 'job', jobId]);
    if (res.code !== 0 && /Invalid job id specified/i.test(res.stderr)) return undefined;
    if (res.code !== 0) throw commandFailed('scontrol show job', res);
    const state = /\bJobState=(\S+)/.exec(res.stdout)?.[1];
    if (!state) throw commandFailed('scontrol show job (no JobState)', { ...res, code: null });
    return { state, reason: /\bReason=(\S+)/.exec(res.stdout)?.[1] ?? '' };
  }

  async #scan(jobs: readonly Job[]): Promise<ScanResult> {
    this.#stats.scans++;
    const dirs = jobs.map((j) => commandPath(j.dir, 'job folder'));
    const res = await this.#host.run(['sh', '-c', SCAN_SCRIPT, 'sh', ...dirs]);
    return parseScan(ensureOk('scan job folders', res).stdout);
  }

  async #settle(
    job: Job,
    slurm: { state: string; reason: string } | undefined,
    scan: ScanResult | undefined,
  ): Promise<void> {
    const slurmState = slurm?.state;
    const phase = jobPhase(slurmState);
    const stopped = abnormalEnd(job.jobId, slurmState, slurm?.reason);
    for (const [index, id] of job.members) {
      const rec = this.#c.get(id);
      if (!rec || !LIVE.includes(rec.state)) continue;
      const h = slurmHandle(rec.handle);
      const code = scan?.exitCode(job.dir, index);
      if (code !== undefined) {
        job.gone.delete(index);
        if (code === 0) {
          const missing = await this.#collect(job, index, rec);
          if (missing === 'retry') continue;
          if (missing) await this.#c.advance(id, LIVE, 'failed', { exitCode: 0, reason: missing });
          else await this.#c.advance(id, LIVE, 'finished', { exitCode: 0 });
        } else {
          await this.#collectAuxiliaries(job, index, rec).catch((err: unknown) =>
            this.#c.log('warn', 'could not bring back the auxiliaries of a failed task', {
              taskId: id,
              err: String(err),
            }),
          );
          await this.#c.advance(id, LIVE, 'failed', {
            exitCode: code,
            reason: `${exitReason(code, rec.task)}${stopped ? `: ${stopped}` : ''}`,
          });
        }
        continue;
      }
      // SLURM requeued the job (node failure, preemption, scontrol requeue) after this task
      // had started: seen waiting again on two polls in a row, or marked by the job's second
      // run. The first run is lost; the task is not run a second time.
      const startedThenPending = phase === 'pending' && scan?.has(job.dir, `${index}.start`);
      const seen = startedThenPending ? (job.requeued.get(index) ?? 0) + 1 : 0;
      job.requeued.set(index, seen);
      if (scan?.has(job.dir, `${index}.lost`) || seen >= this.#confirm) {
        await this.#c.advance(id, LIVE, 'failed', {
          exitCode: null,
          reason: `SLURM requeued job ${job.jobId}${slurm?.reason && slurm.reason !== 'None' ? ` (${slurm.reason})` : ''} after this task had started (node failure, preemption or requeue): its run was lost, and it is not run a second time`,
        });
        continue;
      }
      if (scan?.has(job.dir, `${index}.skipped`)) {
        // Skipped while paused, then resumed: it never ran, so it goes into a new job.
        job.members.delete(index);
        this.#rebatch(id);
        continue;
      }
      if (rec.state === 'submitted' && scan?.has(job.dir, `${index}.start`) && h) {
        await this.#c.advance(id, ['submitted'], 'running', {
          handle: { ...h, startedAt: Date.now() },
        });
        continue;
      }
      if (
        rec.state === 'running' &&
        rec.task.timeoutMs !== undefined &&
        h?.startedAt !== undefined
      ) {
        if (Date.now() > h.startedAt + rec.task.timeoutMs) {
          const r = await this.#c.advance(id, ['running'], 'failed', {
            exitCode: null,
            reason: `timed out after ${rec.task.timeoutMs} ms`,
          });
          if (r) await this.kill(r, 'running');
          continue;
        }
      }
      if (phase === 'ended' || phase === 'gone') {
        const n = (job.gone.get(index) ?? 0) + 1;
        job.gone.set(index, n);
        if (n >= this.#confirm) {
          const why = stopped
            ? `${stopped}; the task left no exit code`
            : `SLURM job ${job.jobId} ended (${slurmState ?? 'no longer known to SLURM'}) without an exit code for this task; see ${job.dir}/job.err`;
          await this.#c.advance(id, LIVE, 'failed', { exitCode: null, reason: why });
        }
      } else job.gone.delete(index);
    }
    const left = this.#liveMembers(job, ['submitted', 'running', 'paused', 'created']);
    if (left.length === 0) {
      this.#jobs.delete(job.key);
      this.#toFetch.add(job);
      // Requeued (or held by SLURM after a failed relaunch) with nothing of ours left to run:
      // its next run would only mark lost tasks, and a held job would wait in the queue for ever.
      if (phase === 'pending') await this.#cancelLeftover(job, slurmState);
    }
  }

  /** Cancels a waiting job none of whose tasks is live; never fails (logged, left queued). */
  async #cancelLeftover(job: Job, slurmState: string | undefined): Promise<void> {
    const jobId = job.jobId;
    if (!jobId || !/^\d+$/.test(jobId)) return;
    try {
      this.#stats.scancel++;
      const res = await this.#host.slurm(['scancel', jobId]);
      if (!/already completing or completed|Invalid job id/i.test(res.stderr))
        ensureOk('scancel', res);
      this.#c.log('info', 'cancelled a waiting SLURM job none of whose tasks is left to run', {
        job: job.key,
        jobId,
        slurmState,
      });
    } catch (err) {
      this.#c.log('warn', 'could not cancel a waiting SLURM job with no task left to run', {
        job: job.key,
        jobId,
        err: String(err),
      });
    }
  }

  /**
   * Brings a task's declared outputs from its work folder into its cwd, verified, before it
   * is recorded finished (again after a restart: each copy replaces the file atomically).
   * Resolves with why the task fails, nothing when all are in place, or 'retry' when the
   * transport failed for now (the next poll tries again).
   */
  async #collect(job: Job, index: number, rec: TaskRecord): Promise<string | 'retry' | undefined> {
    const files = rec.task.files;
    if (!files) return undefined;
    const work = workDirOf(job.dir, index);
    try {
      const missing = await fetchOutputs(this.#host, rec.task, work, (msg, data) =>
        this.#c.log('warn', msg, data),
      );
      if (missing) return missing;
      job.collectFailures.delete(index);
      return undefined;
    } catch (err) {
      if (!isRetryable(err)) return `could not bring back the outputs: ${(err as Error).message}`;
      // Not for ever: after as many polls in a row as a retried call gets attempts, the task
      // pauses with the reason (its exit code stays in the job folder; resume collects again).
      const failures = (job.collectFailures.get(index) ?? 0) + 1;
      if (failures >= this.#retry.attempts) {
        job.collectFailures.delete(index);
        await this.#c.pauseForError(
          rec.task.taskId,
          new CpError(
            'CP_RESOURCE_COMMAND',
            `could not bring back the outputs from ${work} (${failures} tries): ${(err as Error).message}`,
            { retryable: true, cause: err },
          ),
        );
        return 'retry';
      }
      job.collectFailures.set(index, failures);
      this.#c.log('warn', 'could not fetch outputs; will retry', {
        taskId: rec.task.taskId,
        failures,
        err: String(err),
      });
      return 'retry';
    }
  }

  async #collectAuxiliaries(job: Job, index: number, rec: TaskRecord): Promise<void> {
    await fetchAuxiliaries(this.#host, rec.task, workDirOf(job.dir, index), (msg, data) =>
      this.#c.log('warn', msg, data),
    );
  }

  async #fetch(job: Job): Promise<void> {
    try {
      this.#stats.fetches++;
      const localDir = await this.#host.fetchJob(job.dir, job.key);
      this.#toFetch.delete(job);
      if (!localDir) return;
      job.localDir = localDir;
      for (const [index, id] of job.members) {
        const rec = this.#c.get(id);
        const h = rec && slurmHandle(rec.handle);
        if (h && h.jobKey === job.key)
          await this.#c.update(id, { handle: { ...h, index, localDir } });
      }
    } catch (err) {
      // Its tasks' outcomes are recorded already; only the folder's logs stay on the cluster.
      job.fetchFailures++;
      const giveUp = !isRetryable(err) || job.fetchFailures >= this.#retry.attempts;
      this.#c.log(
        giveUp ? 'error' : 'warn',
        giveUp
          ? `could not fetch a job folder; it stays at ${job.dir}`
          : 'could not fetch a job folder; will retry',
        {
          job: job.key,
          failures: job.fetchFailures,
          err: String(err),
        },
      );
      if (giveUp) this.#toFetch.delete(job);
    }
  }

  /** Where this resource's task environments are made, as the jobs see it (task-environment.ts). */
  #envSite(): EnvironmentSite {
    const r = this.#o.resource;
    return {
      dir: posix.join(this.#o.tasksDir, 'envs'),
      python: r.tasks_python_config,
      pipCacheDir: r.tasks_pip_cache_dir,
    };
  }

  // --- finished job folders ---------------------------------------------------------

  /**
   * Removes the job folders past their keep time (slurm-sweep.ts), on the cluster as its user
   * and their local copies; resolves when done. Never fails: a sweep that cannot run is logged
   * and the next one tries again.
   */
  sweepNow(): Promise<void> {
    return this.#sweeper.now();
  }

  async #sweep(): Promise<void> {
    const root = commandPath(this.#o.jobsDir, 'jobs folder');
    const listed = await this.#host.run(['sh', '-c', SWEEP_LIST_SCRIPT, 'sh', root]);
    // A job folder holding a log still being read to be published stays too, whatever its age.
    const held = new Set(
      [...(this.#o.unpublishedLogs?.() ?? [])].flatMap((r) => slurmHandle(r.handle)?.jobKey ?? []),
    );
    const watched = new Set([
      ...this.#jobs.keys(),
      ...[...this.#toFetch].map((j) => j.key),
      ...held,
    ]);
    const plan = planSweep(
      ensureOk('list job folders', listed).stdout,
      this.#o.keep ?? DEFAULT_KEEP,
      watched,
    );
    const gone = [...plan.remove];
    for (const key of plan.ifUnknown) if (!(await this.#findByName(key))) gone.push(key);
    // Watched meanwhile (a restart adopting it while this sweep ran): left alone.
    const remove = gone.filter((k) => !this.#jobs.has(k) && !held.has(k));
    if (remove.length === 0) return;
    const dirs = remove.map((k) => commandPath(posix.join(this.#o.jobsDir, k), 'job folder'));
    ensureOk('remove job folders', await this.#host.run(['rm', '-rf', '--', ...dirs]));
    for (const key of remove) await this.#host.removeLocalCopy?.(key);
    this.#stats.swept += remove.length;
    this.#c.log('info', 'removed finished job folders', { count: remove.length, jobs: remove });
  }

  // --- helpers ------------------------------------------------------------------------

  /** The record of a task this backend holds in a job (the executor keeps it while it runs). */
  #record(id: string): TaskRecord {
    const rec = this.#c.get(id);
    if (!rec) throw new TaskNotFoundError(id);
    return rec;
  }

  #jobOf(rec: TaskRecord): Job | undefined {
    const h = slurmHandle(rec.handle);
    return h ? this.#jobs.get(h.jobKey) : undefined;
  }

  #liveMembers(job: Job, states: readonly TaskState[]): string[] {
    return [...job.members.values()].filter((id) => {
      const s = this.#c.get(id)?.state;
      return s !== undefined && !isTerminal(s) && states.includes(s);
    });
  }

  async #markers(paths: readonly string[]): Promise<void> {
    const res = await this.#host.run([
      'sh',
      '-c',
      'for f in "$@"; do : > "$f"; done',
      'sh',
      ...paths.map((p) => commandPath(p, 'marker')),
    ]);
    ensureOk('write markers', res);
  }
}
