import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { BatchV1Api, V1Job } from '@kubernetes/client-node';
import { statusOf } from './kubernetes-api-error.js';
import { JOB_NAME } from './kubernetes-names.js';
import { PeriodicSweep } from './periodic-sweep.js';
import type { KeepPolicy } from './slurm-sweep.js';

/*
 * Ended Jobs do not stay in the namespace for ever, nor their copies in jobs_local_dir. No
 * ttlSecondsAfterFinished: a Job that Kubernetes deletes before the runner saw its end fails
 * its task ("missing is not done"). Instead, once a task's end is recorded, its Job is
 * annotated with when and how it ended (ENDED_ANNOTATION, OUTCOME_ANNOTATION); a sweep (right
 * after adopt, then every minute: one list of the resource's Jobs) deletes an annotated Job
 * keep.okMs after a finished end and keep.failedMs after a failed one, the SLURM backend's
 * KeepPolicy (CP_JOB_KEEP_S, CP_JOB_KEEP_FAILED_S), with Background propagation (its pods have
 * ended), and with it the Job's files in jobs_local_dir (<job>.log, <job>.log.tmp, <job>.files),
 * those first: a runner dying in between finds the Job again. A keep time of 0 deletes at the
 * next sweep, and never while the runner's task-log publisher is still reading the log copy
 * (its last piece and the end marker: the backend counts such a Job as watched, through
 * BackendContext.unpublishedLogs), as for a SLURM job folder or a local task folder.
 * A Job that ended without the annotation (its runner died between recording the end and
 * marking the Job, or ran an older version) goes keep.failedMs after its Complete or Failed
 * condition. Files whose Job is gone (killed, deleted outside ComputePods) go keep.failedMs
 * after they were last written. Only Jobs and files named as jobNameFor names them are
 * touched, and never those of a task this runner watches.
 */

export const ENDED_ANNOTATION = 'computepods.io/ended';
export const OUTCOME_ANNOTATION = 'computepods.io/outcome';

export type Outcome = 'finished' | 'failed';

/** A file or folder in jobs_local_dir that belongs to a Job: its log copies, its stage folder. */
const JOB_FILE = /^(.+)\.(?:log|log\.tmp|files)$/;

export interface JobFile {
  readonly name: string;
  readonly mtimeMs: number;
}

export interface CleanupPlan {
  /** Jobs past their keep time: delete (with their files). */
  readonly jobs: readonly string[];
  /** Files of Jobs that are gone, old enough: remove. */
  readonly files: readonly string[];
}

/** When and how the task of an ended Job ended: from our annotation, else from its condition. */
function endOf(job: V1Job): { at: number; outcome: Outcome | undefined } | undefined {
  const ann = job.metadata?.annotations ?? {};
  const outcome = ann[OUTCOME_ANNOTATION];
  const at = Date.parse(ann[ENDED_ANNOTATION] ?? '');
  if ((outcome === 'finished' || outcome === 'failed') && Number.isFinite(at))
    return { at, outcome };
  const cond = job.status?.conditions?.find(
    (c) => (c.type === 'Complete' || c.type === 'Failed') && c.status === 'True',
  );
  const t = cond?.lastTransitionTime ? new Date(cond.lastTransitionTime).getTime() : Number.NaN;
  return Number.isFinite(t) ? { at: t, outcome: undefined } : undefined;
}

/** What a sweep removes, leaving out the Jobs named in `watched`. */
export function planCleanup(
  jobs: readonly V1Job[],
  files: readonly JobFile[],
  nowMs: number,
  keep: KeepPolicy,
  watched: ReadonlySet<string>,
): CleanupPlan {
  const listed = new Set<string>();
  const gone = new Set<string>();
  for (const job of jobs) {
    const name = job.metadata?.name;
    if (!name) continue;
    listed.add(name);
    if (!JOB_NAME.test(name) || watched.has(name) || job.metadata?.deletionTimestamp) continue;
    const end = endOf(job);
    // Not ended, or ended and not yet marked: a failed task's keep time, from its end.
    if (!end) continue;
    const keepMs = end.outcome === 'finished' ? keep.okMs : keep.failedMs;
    if (nowMs - end.at >= keepMs) gone.add(name);
  }
  const out: string[] = [];
  for (const f of files) {
    const job = JOB_FILE.exec(f.name)?.[1];
    if (!job || !JOB_NAME.test(job) || gone.has(job)) continue;
    if (listed.has(job) || watched.has(job)) continue;
    if (nowMs - f.mtimeMs >= keep.failedMs) out.push(f.name);
  }
  return { jobs: [...gone], files: out };
}

export interface JobCleanupOptions {
  readonly namespace: string;
  /** The resource's Jobs (the backend's label selector). */
  readonly selector: string;
  readonly jobsDir: string;
  readonly keep: KeepPolicy;
  /** Between two sweeps (default 60 s). */
  readonly everyMs?: number | undefined;
  /** The clock keep times are measured with (tests move it on). */
  readonly now: () => number;
  /** One Batch API call, failing as a ResourceCommandError (the backend's #call). */
  readonly batch: <T>(what: string, fn: (api: BatchV1Api) => Promise<T>) => Promise<T>;
  /** The Job names this runner watches now: never touched. */
  readonly watched: () => ReadonlySet<string>;
  readonly log: (level: 'info' | 'warn', msg: string, data: Record<string, unknown>) => void;
}

/** Marks ended Jobs and deletes them, and their files, past their keep time. */
export class KubernetesJobCleanup {
  readonly #o: JobCleanupOptions;
  readonly #sweeper: PeriodicSweep;
  readonly stats = { marked: 0, jobsRemoved: 0, filesRemoved: 0, sweeps: 0 };

  constructor(options: JobCleanupOptions) {
    this.#o = options;
    this.#sweeper = new PeriodicSweep({
      run: () => this.#sweep(),
      everyMs: options.everyMs ?? 60_000,
      onError: (err) =>
        this.#o.log('warn', 'could not sweep ended Kubernetes Jobs', { err: String(err) }),
    });
  }

  /**
   * The task's end was recorded: the Job says so (annotated), for the sweeps to come. Never
   * fails: what cannot be done is logged, and a sweep finds the Job by its end condition.
   */
  async ended(jobName: string, outcome: Outcome): Promise<void> {
    const at = new Date(this.#o.now()).toISOString();
    try {
      await this.#o.batch('annotate Job', (api) =>
        api.patchNamespacedJob({
          name: jobName,
          namespace: this.#o.namespace,
          body: [
            { op: 'add', path: `/metadata/annotations/${pointer(ENDED_ANNOTATION)}`, value: at },
            {
              op: 'add',
              path: `/metadata/annotations/${pointer(OUTCOME_ANNOTATION)}`,
              value: outcome,
            },
          ],
        }),
      );
      this.stats.marked++;
    } catch (err) {
      if (statusOf(err) === 404) return; // gone already: its files go as a gone Job's do
      this.#o.log(
        'warn',
        'could not mark an ended Job; it goes the failed keep time after its end',
        {
          job: jobName,
          err: String(err),
        },
      );
    }
  }

  /** Sweeps now, then every everyMs (from adopt, when the runner knows what it watches). */
  start(): void {
    this.#sweeper.start();
  }

  /** One sweep (resolves when done). Never fails: one that cannot run is logged. */
  sweepNow(): Promise<void> {
    return this.#sweeper.now();
  }

  async #sweep(): Promise<void> {
    this.stats.sweeps++;
    // The folder is read before the Jobs are listed: a file seen here whose Job exists was made
    // after its Job, so that Job is in the list.
    const files = await jobFiles(this.#o.jobsDir);
    const list = await this.#o.batch('list Jobs', (api) =>
      api.listNamespacedJob({ namespace: this.#o.namespace, labelSelector: this.#o.selector }),
    );
    const plan = planCleanup(list.items, files, this.#o.now(), this.#o.keep, this.#o.watched());
    // Watched meanwhile (adopted while this sweep ran): left alone.
    const watched = this.#o.watched();
    const jobs = plan.jobs.filter((j) => !watched.has(j));
    for (const job of jobs) await this.#remove(job);
    for (const f of plan.files) {
      await rm(join(this.#o.jobsDir, f), { recursive: true, force: true });
      this.stats.filesRemoved++;
    }
    if (jobs.length || plan.files.length)
      this.#o.log('info', 'removed ended Kubernetes Jobs and their files', {
        jobs,
        files: plan.files,
      });
  }

  /** The Job's files, then the Job (its pods with it). */
  async #remove(jobName: string): Promise<void> {
    for (const suffix of ['.log', '.log.tmp', '.files'])
      await rm(join(this.#o.jobsDir, `${jobName}${suffix}`), { recursive: true, force: true });
    try {
      await this.#o.batch('delete Job', (api) =>
        api.deleteNamespacedJob({
          name: jobName,
          namespace: this.#o.namespace,
          propagationPolicy: 'Background',
        }),
      );
      this.stats.jobsRemoved++;
    } catch (err) {
      if (statusOf(err) !== 404) throw err;
    }
  }

  close(): Promise<void> {
    return this.#sweeper.close();
  }
}

/** A key as one JSON pointer segment (RFC 6901: "~" and "/" escaped). */
function pointer(key: string): string {
  return key.replace(/~/g, '~0').replace(/\//g, '~1');
}

async function jobFiles(dir: string): Promise<JobFile[]> {
  const names = await readdir(dir).catch(() => [] as string[]);
  const out: JobFile[] = [];
  for (const name of names) {
    if (!JOB_FILE.test(name)) continue;
    const st = await stat(join(dir, name)).catch(() => undefined);
    if (st) out.push({ name, mtimeMs: st.mtimeMs });
  }
  return out;
}
