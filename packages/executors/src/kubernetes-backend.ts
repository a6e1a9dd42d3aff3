import { createWriteStream, mkdirSync } from 'node:fs';
import { lstat, rename, writeFile } from 'node:fs/promises';
import { isAbsolute, join, posix, relative } from 'node:path';
import type {
  KubernetesProfile,
  KubernetesResource,
  TaskRecord,
  TaskState,
} from '@computepods/protocol';
import type {
  BatchV1Api,
  CoreV1Api,
  KubeConfig,
  V1Job,
  V1JobCondition,
  V1Pod,
} from '@kubernetes/client-node';
import type { Backend, BackendContext, LogRead, LogStream, UnpublishedLogs } from './backend.js';
import { isRetryable, ResourceCommandError, UnsafeValueError } from './errors.js';
import { type KubernetesHandle, kubernetesHandle } from './handle.js';
import { apiError, statusOf } from './kubernetes-api-error.js';
import { KubernetesJobCleanup } from './kubernetes-cleanup.js';
import { checkDnsLabel, checkLabelValue, jobNameFor } from './kubernetes-names.js';
import {
  k8sLiteral,
  STAGE_IN_CONTAINER,
  STAGE_MOUNT,
  STAGE_OUT_FAILED,
  STAGE_OUT_MARK,
  STAGE_VOLUME,
  STAGE_WORK,
  type StagedInput,
  stageInScript,
  stageOutWrapper,
} from './kubernetes-stage-pod.js';
import { KubernetesStageServer, type KubernetesStagingOptions } from './kubernetes-stage-server.js';
import { isTerminal } from './lifecycle.js';
import { Poller } from './poller.js';
import { readFrom, readTail } from './read-tail.js';
import { DEFAULT_RETRY, type RetryPolicy, withRetry } from './retry.js';
import { TaskFileError } from './slurm-files.js';
import { DEFAULT_KEEP, type KeepPolicy } from './slurm-sweep.js';

export interface KubernetesBackendOptions {
  readonly resource: KubernetesResource;
  readonly profile: KubernetesProfile;
  /** The resource's id: every Job carries it as a label, and one list per poll selects by it. */
  readonly resourceId: string;
  /** The project's queue: its name is the Kueue LocalQueue label (kueue.x-k8s.io/queue-name). */
  readonly queue?: string | undefined;
  /** Where pods' logs are followed to (default jobs_local_dir). */
  readonly jobsDir: string;
  /** Between two polls; default jobs_poll_interval (at least 0.2 s). */
  readonly pollMs?: number;
  /** Retries of an API call before the tasks concerned are paused. */
  readonly retry?: RetryPolicy;
  /** Polls in a row that must find a Job gone before its task fails (default 2). */
  readonly confirmPolls?: number;
  /**
   * Declared files moved through the runner (kubernetes-stage-*.ts) for a resource without
   * workspace_volume: the stage server pods fetch inputs from and send outputs to.
   */
  readonly staging?: KubernetesStagingOptions | undefined;
  /**
   * How long ended Jobs and their files in jobsDir are kept after the task's end was recorded
   * (kubernetes-cleanup.ts; default DEFAULT_KEEP, as SLURM job folders).
   */
  readonly keep?: KeepPolicy | undefined;
  /** Between two sweeps of ended Jobs (default 60 s; the first comes with adopt). */
  readonly sweepEveryMs?: number;
  /** Tasks whose logs are still being published: their Jobs and log copies are not swept. */
  readonly unpublishedLogs?: UnpublishedLogs | undefined;
  /** The clock keep times are measured with (default Date.now; tests move it on). */
  readonly now?: () => number;
}

/** What a staged task's Job carries: the stage server, and the inputs as they were hashed. */
interface StagePlan {
  readonly server: KubernetesStageServer;
  readonly inputs: readonly StagedInput[];
  readonly dirs: readonly string[];
}

const LIVE: readonly TaskState[] = ['submitted', 'running'];
const MANAGED = 'app.kubernetes.io/managed-by';
const RESOURCE_LABEL = 'computepods.io/resource';
const TASK_ANNOTATION = 'computepods.io/task-id';
const QUEUE_LABEL = 'kueue.x-k8s.io/queue-name';
const CONTAINER = 'task';

interface Follow {
  abort?: AbortController;
  pod: string;
}

/**
 * Kubernetes through the official client: one batch/v1 Job per task (restartPolicy Never,
 * backoffLimit 0), labelled with the resource and the project's Kueue queue. One list of Jobs
 * and one of Pods per poll cover every task of the resource; state comes from the Job's
 * conditions (Complete, Failed with its reason), a started pod makes a task running. A Job
 * missing from the list is not done: only when it is missing on two polls in a row does its
 * task fail, saying it was deleted outside ComputePods. Pause suspends the Job, resume
 * unsuspends it, kill deletes it with foreground propagation. The running pod's log is
 * followed into a local file, read whole once more when the task ends. Once the end is
 * recorded the Job is marked ended, and it goes with its files after its keep time
 * (kubernetes-cleanup.ts).
 */
export class KubernetesBackend implements Backend {
  readonly type = 'kubernetes' as const;
  readonly #o: KubernetesBackendOptions;
  /**
   * The official client, loaded when the first call needs it: importing it costs a process
   * some 120 MiB, which every runner paid, whatever its resource, while this module was
   * imported with the other backends.
   */
  #client: Promise<KubeClient> | undefined;
  readonly #ns: string;
  readonly #retry: RetryPolicy;
  readonly #pollMs: number;
  readonly #confirm: number;
  readonly #selector: string;
  readonly #c: BackendContext;
  /** task id → the Job's uid once it was created (or found) */
  readonly #tasks = new Map<string, string | undefined>();
  readonly #launching = new Map<string, Promise<void>>();
  readonly #creating = new Map<string, Promise<unknown>>();
  readonly #gone = new Map<string, number>();
  readonly #follows = new Map<string, Follow>();
  /** Jobs whose task's end is being recorded: out of #tasks, not yet marked ended. */
  readonly #ending = new Set<string>();
  readonly #poller: Poller;
  readonly #cleanup: KubernetesJobCleanup;
  #pollFailures = 0;
  #closed = false;
  readonly #stage: Promise<KubernetesStageServer> | undefined;
  readonly #stats = { creates: 0, lists: 0, patches: 0, deletes: 0, logReads: 0, pollFailures: 0 };

  constructor(options: KubernetesBackendOptions, ctx: BackendContext) {
    this.#c = ctx;
    this.#o = options;
    const r = options.resource;
    this.#ns = checkDnsLabel('namespace', r.namespace);
    checkLabelValue('resource id', options.resourceId);
    if (options.queue !== undefined)
      checkLabelValue('queue name (Kueue LocalQueue)', options.queue);
    this.#retry = options.retry ?? DEFAULT_RETRY;
    this.#pollMs = options.pollMs ?? Math.max(200, r.jobs_poll_interval * 1000);
    this.#poller = new Poller({
      poll: () => this.#poll(),
      more: () => this.#live().length > 0,
      everyMs: this.#pollMs,
      failures: () => this.#pollFailures,
      retry: this.#retry,
      onError: (err) => this.#c.log('error', 'poll failed', { err: String(err) }),
    });
    this.#confirm = options.confirmPolls ?? 2;
    this.#selector = `${MANAGED}=computepods,${RESOURCE_LABEL}=${options.resourceId}`;
    mkdirSync(options.jobsDir, { recursive: true });
    this.#cleanup = new KubernetesJobCleanup({
      namespace: this.#ns,
      selector: this.#selector,
      jobsDir: options.jobsDir,
      keep: options.keep ?? DEFAULT_KEEP,
      everyMs: options.sweepEveryMs,
      now: options.now ?? Date.now,
      batch: (what, fn) => this.#call(what, (k) => fn(k.batch)),
      watched: () => this.#watched(),
      log: (level, msg, data) => this.#c.log(level, msg, data),
    });
    this.#stage = this.#startStageServer();
  }

  /**
   * The Jobs of the tasks this backend watches, of those whose end is being recorded, and of
   * those whose log copy is still being read to be published.
   */
  #watched(): Set<string> {
    const names = new Set(this.#ending);
    for (const id of this.#tasks.keys()) {
      const job = kubernetesHandle(this.#c.get(id)?.handle)?.jobName;
      if (job) names.add(job);
    }
    for (const rec of this.#o.unpublishedLogs?.() ?? []) {
      const job = kubernetesHandle(rec.handle)?.jobName;
      if (job) names.add(job);
    }
    return names;
  }

  /**
   * Removes the ended Jobs past their keep time and their files (kubernetes-cleanup.ts);
   * resolves when done, never fails (tests; the runner sweeps from adopt on).
   */
  sweepNow(): Promise<void> {
    return this.#cleanup.sweepNow();
  }

  /** Started at once: a pod adopted after a restart may be about to send its outputs. */
  #startStageServer(): Promise<KubernetesStageServer> | undefined {
    const staging = this.#o.staging;
    if (!staging) return undefined;
    const stage = KubernetesStageServer.start(
      staging,
      this.#o.jobsDir,
      (job) => this.#recordOfJob(job),
      (msg, data) => this.#c.log('warn', msg, data),
    );
    stage.catch((err: unknown) =>
      this.#c.log('error', 'the Kubernetes stage server could not start', { err: String(err) }),
    );
    return stage;
  }

  /** The record of the live task whose Job has this name (for the stage server). */
  #recordOfJob(jobName: string): TaskRecord | undefined {
    for (const id of this.#tasks.keys()) {
      const rec = this.#c.get(id);
      if (kubernetesHandle(rec?.handle)?.jobName === jobName) return rec;
    }
    return undefined;
  }

  /** The stage server, or undefined when there is none or it could not start (logged then). */
  async #stageServer(): Promise<KubernetesStageServer | undefined> {
    return this.#stage?.catch(() => undefined);
  }

  /** True when the task's declared files go through the stage server (no shared volume). */
  #staged(rec: TaskRecord): boolean {
    return !!rec.task.files && !this.#o.resource.workspace_volume;
  }

  enqueue(rec: TaskRecord): void {
    const id = rec.task.taskId;
    this.#tasks.set(id, undefined);
    this.#launch(id);
  }

  async pause(rec: TaskRecord): Promise<void> {
    const id = rec.task.taskId;
    await this.#creating.get(id);
    this.#stopFollow(id);
    if (rec.pausedFrom !== 'submitted') return; // created: no Job yet; running: only stop watching
    const h = kubernetesHandle(rec.handle);
    if (!h || !this.#tasks.get(id)) return;
    // Suspending deletes a started pod, and resuming would start the command again: a pod
    // that started since the last poll is left to run (as a running task is) and collected
    // after resume, so nothing runs twice.
    const pods = await this.#call('list Pods', (k) =>
      k.core.listNamespacedPod({
        namespace: this.#ns,
        labelSelector: `job-name=${h.jobName}`,
      }),
    );
    this.#stats.lists++;
    if (pods.items.some((p) => p.status?.phase && p.status.phase !== 'Pending')) {
      this.#c.log('warn', 'the task had started when it was paused; it runs on', { taskId: id });
      return;
    }
    // A suspended Job holds nothing: its pending pod is deleted.
    await this.#call('suspend Job', (k) =>
      k.batch.patchNamespacedJob({
        name: h.jobName,
        namespace: this.#ns,
        body: [{ op: 'replace', path: '/spec/suspend', value: true }],
      }),
    ).then(
      () => this.#stats.patches++,
      (err: unknown) => {
        if (statusOf(err) !== 404) throw err;
      },
    );
  }

  async resume(rec: TaskRecord): Promise<void> {
    const id = rec.task.taskId;
    const h = kubernetesHandle(rec.handle);
    if (rec.state === 'submitted' && h && this.#tasks.get(id)) {
      await this.#call('resume Job', (k) =>
        k.batch.patchNamespacedJob({
          name: h.jobName,
          namespace: this.#ns,
          body: [{ op: 'replace', path: '/spec/suspend', value: false }],
        }),
      );
      this.#stats.patches++;
    } else if (rec.state === 'submitted') {
      this.#tasks.set(id, undefined);
      this.#launch(id);
      return;
    }
    this.#ensurePolling();
  }

  async kill(rec: TaskRecord, from: TaskState): Promise<void> {
    const id = rec.task.taskId;
    await this.#creating.get(id);
    this.#stopFollow(id);
    this.#tasks.delete(id);
    if (from === 'created') return;
    const h = kubernetesHandle(rec.handle);
    if (!h) return;
    await (await this.#stageServer())?.discard(h.jobName);
    // Foreground: the Job goes only once its pods are gone (their processes stopped).
    await this.#call('delete Job', (k) =>
      k.batch.deleteNamespacedJob({
        name: h.jobName,
        namespace: this.#ns,
        propagationPolicy: 'Foreground',
      }),
    ).then(
      () => this.#stats.deletes++,
      (err: unknown) => {
        if (statusOf(err) !== 404) throw err;
      },
    );
  }

  async adopt(recs: readonly TaskRecord[]): Promise<void> {
    for (const rec of recs) {
      const id = rec.task.taskId;
      const h = kubernetesHandle(rec.handle);
      if (rec.state === 'created' || (rec.state === 'submitted' && !h)) {
        this.enqueue(rec);
        continue;
      }
      if (rec.state === 'killed') {
        // Recorded killed, but the runner may have died before it acted: act again.
        if (h)
          await this.kill(rec, 'running').catch((err: unknown) =>
            this.#c.log('warn', 'could not re-apply a kill after restart', { err: String(err) }),
          );
        continue;
      }
      if (!h || isTerminal(rec.state)) continue;
      this.#tasks.set(id, rec.jobId);
      // Recorded submitted before the Job was created: create it now (by its recorded name,
      // so one the dead runner did create is found, not made twice).
      if (!rec.jobId && rec.state === 'submitted') this.#launch(id);
    }
    this.#ensurePolling();
    // Now that every live task is watched: Jobs whose task ended, before the restart too.
    this.#cleanup.start();
  }

  async logs(rec: TaskRecord, stream: LogStream, maxBytes: number): Promise<string> {
    const h = kubernetesHandle(rec.handle);
    // A pod's log is stdout and stderr together, as the kubelet keeps it.
    if (!h || stream === 'stderr') return '';
    return readTail(h.logPath, maxBytes);
  }

  async readLog(
    rec: TaskRecord,
    stream: LogStream,
    offset: number,
    maxBytes: number,
  ): Promise<LogRead | undefined> {
    const h = kubernetesHandle(rec.handle);
    if (!h || stream === 'stderr') return undefined;
    return readFrom(h.logPath, offset, maxBytes);
  }

  stats(): Readonly<Record<string, number>> {
    return {
      ...this.#stats,
      ...this.#cleanup.stats,
      tasks: this.#tasks.size,
      following: this.#follows.size,
    };
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#poller.close();
    await this.#cleanup.close();
    await Promise.allSettled(this.#launching.values());
    for (const id of [...this.#follows.keys()]) this.#stopFollow(id);
    await this.#stage?.then(
      (s) => s.close(),
      () => undefined,
    );
  }

  // --- submission ---------------------------------------------------------------------

  #launch(id: string): void {
    if (this.#launching.has(id)) return;
    const p = this.#submit(id)
      .catch((err: unknown) =>
        this.#c.log('error', 'could not submit a task', { taskId: id, err: String(err) }),
      )
      .finally(() => {
        this.#launching.delete(id);
      });
    this.#launching.set(id, p);
  }

  async #submit(id: string): Promise<void> {
    let rec = this.#c.get(id);
    if (!rec || this.#closed) return;
    const vol = this.#o.resource.workspace_volume;
    if (rec.task.environment) {
      // Made where the task runs and reused there: a pod's file system goes with the pod.
      await this.#fail(
        id,
        `the task names an environment, which the Kubernetes backend does not make yet; run the rule on a local or SLURM resource, or build the requirements into the resource's image and drop environment`,
      );
      return;
    }
    if (rec.task.files && !vol && !this.#stage) {
      await this.#fail(
        id,
        `the task declares files (files.inputs/outputs), and resource ${JSON.stringify(this.#o.resourceId)} has no workspace_volume while this runner serves no staging: set CP_K8S_STAGE_LISTEN (and the TLS files) so pods fetch their inputs from the runner, or give the resource a workspace_volume (the workspace's PersistentVolumeClaim)`,
      );
      return;
    }
    if (rec.task.files && vol && !within(vol.mount_path, rec.task.cwd)) {
      await this.#fail(
        id,
        `the task's cwd ${JSON.stringify(rec.task.cwd)} is not on the workspace volume (mounted at ${vol.mount_path}), so its pod would not see its files`,
      );
      return;
    }
    let h = kubernetesHandle(rec.handle);
    if (!h) {
      const jobName = jobNameFor(id);
      h = {
        kind: 'kubernetes',
        namespace: this.#ns,
        jobName,
        logPath: join(this.#o.jobsDir, `${jobName}.log`),
      };
      // Recorded with the Job's name before the Job is created: a restarted runner looks
      // for it by that name and never creates a second one.
      const patch = { handle: h, stdoutPath: h.logPath };
      const r =
        rec.state === 'submitted'
          ? await this.#c.update(id, patch)
          : await this.#c.advance(id, ['created'], 'submitted', patch);
      if (!r) return;
      rec = r;
    }
    const handle = h;
    let body: V1Job;
    try {
      let plan: StagePlan | undefined;
      if (this.#staged(rec) && this.#stage) {
        const server = await this.#stage;
        // Hashed now: the pod checks what it fetches against these.
        plan = { server, ...(await server.prepare(rec)) };
      }
      body = this.#jobFor(rec, handle, plan);
    } catch (err) {
      const why = (err as Error).message;
      await this.#fail(
        id,
        err instanceof TaskFileError ? `could not stage the task's declared files: ${why}` : why,
      );
      return;
    }
    try {
      const created = withRetry(
        this.#retry,
        async () => {
          try {
            this.#stats.creates++;
            const job = await this.#call('create Job', (k) =>
              k.batch.createNamespacedJob({ namespace: this.#ns, body }),
            );
            return job.metadata?.uid;
          } catch (err) {
            if (statusOf(err) !== 409) throw err;
            // Created by an earlier try whose answer was lost, or by the runner before a restart.
            const job = await this.#call('read Job', (k) =>
              k.batch.readNamespacedJob({ name: handle.jobName, namespace: this.#ns }),
            );
            if (job.metadata?.annotations?.[TASK_ANNOTATION] !== id)
              throw new ResourceCommandError(
                'create Job',
                409,
                `a Job named ${handle.jobName} exists in namespace ${this.#ns} and is not this task's`,
                false,
              );
            return job.metadata?.uid;
          }
        },
        (err, attempt, delay) =>
          this.#c.log('warn', 'creating a Job failed; retrying', {
            taskId: id,
            attempt,
            delay,
            err: String(err),
          }),
      );
      // Pause and kill wait for the create and the uid it gives (not for the record updates
      // below: those queue behind the pause or kill itself).
      const creating = created.then((uid) => {
        if (this.#tasks.has(id)) this.#tasks.set(id, uid ?? 'unknown');
        return uid;
      });
      this.#creating.set(
        id,
        creating.catch(() => undefined),
      );
      const uid = await creating.finally(() => this.#creating.delete(id));
      if (!this.#tasks.has(id)) return; // killed meanwhile
      if (uid) await this.#c.update(id, { jobId: uid });
      this.#ensurePolling();
    } catch (err) {
      if (isRetryable(err)) await this.#c.pauseForError(id, err);
      else await this.#fail(id, (err as Error).message);
    }
  }

  #jobFor(rec: TaskRecord, h: KubernetesHandle, plan?: StagePlan): V1Job {
    const t = rec.task;
    const cfg = this.#o.resource.jobs_runner_config;
    const vol = this.#o.resource.workspace_volume;
    const labels: Record<string, string> = {
      [MANAGED]: 'computepods',
      [RESOURCE_LABEL]: this.#o.resourceId,
      ...(this.#o.queue ? { [QUEUE_LABEL]: this.#o.queue } : {}),
    };
    const limits: Record<string, string> = {};
    const requests: Record<string, string> = {};
    const pod = cfg.default_pod_config;
    if (pod?.cpu) requests.cpu = limits.cpu = pod.cpu;
    if (pod?.memory) requests.memory = limits.memory = pod.memory;
    const gpu = t.gpu ? cfg.gpu_pod_config : undefined;
    if (t.gpu && !gpu)
      throw new UnsafeValueError(
        'gpu',
        'true',
        `resource ${JSON.stringify(this.#o.resourceId)} has no jobs_runner_config.gpu_pod_config; send GPU rules to a resource that has one`,
      );
    if (gpu) limits['nvidia.com/gpu'] = String(gpu.gpu ?? 1);
    const nodeSelector = { ...pod?.node_selector, ...gpu?.node_selector };
    // Kubernetes expands $(NAME) in values: each $ doubled, a value arrives as written.
    const env = Object.entries(t.env).map(([name, value]) => ({ name, value: k8sLiteral(value) }));
    const stage = plan && stageParts(plan, h.jobName, t.command, cfg.image, t.files);
    return {
      apiVersion: 'batch/v1',
      kind: 'Job',
      metadata: {
        name: h.jobName,
        namespace: this.#ns,
        labels,
        annotations: { [TASK_ANNOTATION]: t.taskId },
      },
      spec: {
        backoffLimit: 0,
        suspend: false,
        ...(t.timeoutMs !== undefined
          ? { activeDeadlineSeconds: Math.max(1, Math.ceil(t.timeoutMs / 1000)) }
          : {}),
        template: {
          metadata: { labels: { [MANAGED]: 'computepods', [RESOURCE_LABEL]: this.#o.resourceId } },
          spec: {
            restartPolicy: 'Never',
            serviceAccountName: this.#o.profile.service_account,
            terminationGracePeriodSeconds: 10,
            ...(Object.keys(nodeSelector).length ? { nodeSelector } : {}),
            ...(stage ? { initContainers: [stage.init] } : {}),
            containers: [
              {
                name: CONTAINER,
                image: cfg.image,
                ...(stage ? stage.main : { command: ['/bin/sh', '-c', k8sLiteral(t.command)] }),
                workingDir: stage ? STAGE_WORK : t.cwd,
                env: [...env, ...(stage?.env ?? [])],
                ...(Object.keys(limits).length ? { resources: { limits, requests } } : {}),
                ...(vol
                  ? { volumeMounts: [{ name: 'workspace', mountPath: vol.mount_path }] }
                  : {}),
                ...(stage ? { volumeMounts: [stage.mount] } : {}),
              },
            ],
            ...(vol
              ? {
                  volumes: [
                    { name: 'workspace', persistentVolumeClaim: { claimName: vol.claim_name } },
                  ],
                }
              : {}),
            ...(stage ? { volumes: [{ name: STAGE_VOLUME, emptyDir: {} }] } : {}),
          },
        },
      },
    };
  }

  /** Records the task failed; resolves with the record, or undefined if it had moved on. */
  async #fail(
    id: string,
    reason: string,
    exitCode: number | null = null,
  ): Promise<TaskRecord | undefined> {
    this.#tasks.delete(id);
    this.#stopFollow(id);
    // What its pod sent back, if anything, is of no more use.
    const job = kubernetesHandle(this.#c.get(id)?.handle)?.jobName;
    if (job) await (await this.#stageServer())?.discard(job);
    return this.#c.advance(id, ['created', 'submitted', 'running'], 'failed', {
      exitCode,
      reason,
    });
  }

  // --- polling ------------------------------------------------------------------------

  #ensurePolling(): void {
    this.#poller.ensure();
  }

  /** Polls now (tests); resolves when the poll is done. */
  pollNow(): Promise<void> {
    return this.#poller.now();
  }

  #live(): string[] {
    return [...this.#tasks.keys()].filter((id) => {
      const s = this.#c.get(id)?.state;
      return s !== undefined && LIVE.includes(s);
    });
  }

  async #poll(): Promise<void> {
    // Only tasks whose Job was created (or found) are looked for; the others are launching.
    const live = this.#live().filter((id) => this.#tasks.get(id) && !this.#launching.has(id));
    if (live.length === 0) return;
    let jobs: Map<string, V1Job>;
    let pods: Map<string, V1Pod[]>;
    try {
      this.#stats.lists += 2;
      const [jl, pl] = await Promise.all([
        this.#call('list Jobs', (k) =>
          k.batch.listNamespacedJob({ namespace: this.#ns, labelSelector: this.#selector }),
        ),
        this.#call('list Pods', (k) =>
          k.core.listNamespacedPod({ namespace: this.#ns, labelSelector: this.#selector }),
        ),
      ]);
      jobs = new Map(jl.items.map((j) => [j.metadata?.name ?? '', j]));
      pods = new Map();
      for (const p of pl.items) {
        const job = p.metadata?.labels?.['job-name'];
        if (!job) continue;
        pods.set(job, [...(pods.get(job) ?? []), p]);
      }
      this.#pollFailures = 0;
    } catch (err) {
      // A failed list never ends a task: count it, back off, pause when it persists.
      this.#pollFailures++;
      this.#stats.pollFailures++;
      this.#c.log('warn', 'listing Jobs failed', {
        failures: this.#pollFailures,
        err: String(err),
      });
      if (this.#pollFailures >= this.#retry.attempts || !isRetryable(err)) {
        this.#pollFailures = 0;
        for (const id of live) {
          this.#stopFollow(id);
          await this.#c.pauseForError(id, err);
        }
      }
      return;
    }
    for (const id of live) await this.#settle(id, jobs, pods);
  }

  async #settle(
    id: string,
    jobs: ReadonlyMap<string, V1Job>,
    pods: ReadonlyMap<string, V1Pod[]>,
  ): Promise<void> {
    const rec = this.#c.get(id);
    const h = rec && kubernetesHandle(rec.handle);
    if (!rec || !h || !LIVE.includes(rec.state)) return;
    const uid = this.#tasks.get(id);
    const job = jobs.get(h.jobName);
    const same = job && (uid === 'unknown' || !uid || job.metadata?.uid === uid);
    if (!job || !same || job.metadata?.deletionTimestamp) {
      // Missing is not done: a Job can be gone for a moment from no list, but one that stays
      // gone was deleted outside ComputePods (or by its TTL) before its end was seen.
      const n = (this.#gone.get(id) ?? 0) + 1;
      this.#gone.set(id, n);
      if (n >= this.#confirm) {
        this.#gone.delete(id);
        await this.#fail(
          id,
          `Kubernetes Job ${h.jobName} in namespace ${this.#ns} ${job && !same ? 'was replaced by another Job of the same name' : 'was deleted outside ComputePods'} before its end was seen; the task is not taken as done`,
        );
      }
      return;
    }
    this.#gone.delete(id);
    const podsOf = pods.get(h.jobName) ?? [];
    const cond = (type: string) =>
      job.status?.conditions?.find((c) => c.type === type && c.status === 'True');
    const complete = cond('Complete');
    const failed = cond('Failed');
    if (complete || failed) {
      // Out of #tasks while its end is recorded, yet never swept before it is marked ended.
      this.#ending.add(h.jobName);
      try {
        const ended = await this.#end(id, rec, h, podsOf, complete ? undefined : failed);
        if (ended && isTerminal(ended.state))
          await this.#cleanup.ended(h.jobName, ended.state === 'finished' ? 'finished' : 'failed');
      } finally {
        this.#ending.delete(h.jobName);
      }
      return;
    }
    const started = podsOf.find((p) => p.status?.phase !== 'Pending' && p.status?.phase);
    if (rec.state === 'submitted' && started) {
      const r = await this.#c.advance(id, ['submitted'], 'running', {
        handle: { ...h, startedAt: Date.now() },
      });
      if (r) this.#follow(id, h, started);
      return;
    }
    if (rec.state === 'running' && started && !this.#follows.has(id)) this.#follow(id, h, started);
  }

  /**
   * The Job completed or failed: its log read whole, its outputs collected, and the task's
   * end recorded; resolves with the record, or undefined if the task had moved on meanwhile.
   */
  async #end(
    id: string,
    rec: TaskRecord,
    h: KubernetesHandle,
    podsOf: readonly V1Pod[],
    failed: V1JobCondition | undefined,
  ): Promise<TaskRecord | undefined> {
    const complete = !failed;
    const staged = this.#staged(rec) ? await this.#stageServer() : undefined;
    const stageIn = staged ? await this.#stageInFailure(podsOf) : undefined;
    if (stageIn) {
      await staged?.discard(h.jobName);
      return this.#fail(id, `could not stage the task's declared inputs into its pod: ${stageIn}`);
    }
    await this.#collectLog(id, h, podsOf);
    if (complete) {
      let missing: string | undefined;
      try {
        missing = staged ? await staged.collect(rec, h.jobName) : await missingOutput(rec);
      } catch (err) {
        if (!(err instanceof TaskFileError)) throw err;
        missing = err.message;
      }
      await staged?.discard(h.jobName);
      if (missing) return this.#fail(id, missing, 0);
      this.#tasks.delete(id);
      return this.#c.advance(id, LIVE, 'finished', { exitCode: 0 });
    }
    const code = exitCodeOf(podsOf);
    if (staged) {
      await staged.collectAuxiliaries(rec, h.jobName);
      await staged.discard(h.jobName);
      const why = code === STAGE_OUT_FAILED ? await stageOutFailure(h.logPath) : undefined;
      if (why)
        return this.#fail(
          id,
          `the command exited 0, but its declared outputs could not be sent back to the runner: ${why}`,
          code,
        );
    }
    return this.#fail(
      id,
      `Kubernetes Job ${h.jobName} failed: ${failed?.reason ?? 'Failed'}${failed?.message ? `: ${failed.message}` : ''}${code !== null ? ` (exit code ${code})` : ''}`,
      code,
    );
  }

  // --- logs ---------------------------------------------------------------------------

  /** Follows the pod's log into the task's log file (anew after a restart: the file starts over). */
  #follow(id: string, h: KubernetesHandle, pod: V1Pod): void {
    const name = pod.metadata?.name;
    if (!name || this.#closed) return;
    const f: Follow = { pod: name };
    this.#follows.set(id, f);
    const out = createWriteStream(h.logPath);
    out.on('error', (err) =>
      this.#c.log('warn', 'could not write a pod log', { taskId: id, err: String(err) }),
    );
    this.#kube()
      .then((k) => new k.Log(k.kc).log(this.#ns, name, CONTAINER, out, { follow: true }))
      .then((abort) => {
        if (this.#follows.get(id) !== f) abort.abort();
        else f.abort = abort;
      })
      .catch((err: unknown) => {
        out.end();
        this.#c.log('warn', 'could not follow a pod log; it is read when the task ends', {
          taskId: id,
          err: String(err),
        });
      });
  }

  #stopFollow(id: string): void {
    const f = this.#follows.get(id);
    this.#follows.delete(id);
    f?.abort?.abort();
  }

  /** Why the pod's stage-in init container failed (the end of its log), if it did. */
  async #stageInFailure(pods: readonly V1Pod[]): Promise<string | undefined> {
    for (const p of [...pods].reverse()) {
      const st = p.status?.initContainerStatuses?.find((c) => c.name === STAGE_IN_CONTAINER);
      const t = st?.state?.terminated;
      const name = p.metadata?.name;
      if (!t || t.exitCode === 0 || !name) continue;
      const log = await this.#call('read pod log', (k) =>
        k.core.readNamespacedPodLog({ name, namespace: this.#ns, container: STAGE_IN_CONTAINER }),
      ).catch((err: unknown) => `(its log could not be read: ${String(err)})`);
      return `init container ${STAGE_IN_CONTAINER} of pod ${name} exited ${t.exitCode}: ${tail(log)}`;
    }
    return undefined;
  }

  // The followed copy may lag or have been cut by a lost connection: the log is read whole
  // once more and replaces it (written to a temp name, then renamed).
  async #collectLog(id: string, h: KubernetesHandle, pods: readonly V1Pod[]): Promise<void> {
    this.#stopFollow(id);
    const pod = [...pods].reverse().find((p) => p.status?.phase !== 'Pending');
    const name = pod?.metadata?.name;
    if (!name) return;
    try {
      this.#stats.logReads++;
      const text = await this.#call('read pod log', (k) =>
        k.core.readNamespacedPodLog({ name, namespace: this.#ns, container: CONTAINER }),
      );
      await writeFile(`${h.logPath}.tmp`, text);
      await rename(`${h.logPath}.tmp`, h.logPath);
    } catch (err) {
      this.#c.log('warn', 'could not read the log of an ended pod; keeping what was followed', {
        taskId: id,
        err: String(err),
      });
    }
  }

  // --- API calls ----------------------------------------------------------------------

  /** One API call; its failure as a ResourceCommandError that says whether a retry can help. */
  async #call<T>(what: string, fn: (k: KubeClient) => Promise<T>): Promise<T> {
    const k = await this.#kube();
    try {
      return await fn(k);
    } catch (err) {
      throw apiError(what, err);
    }
  }

  /** The client for the resource's kubeconfig and context, loaded once (see #client). */
  #kube(): Promise<KubeClient> {
    this.#client ??= (async () => {
      const m = await import('@kubernetes/client-node');
      const r = this.#o.resource;
      const kc = new m.KubeConfig();
      if (r.kubeconfig_path) kc.loadFromFile(r.kubeconfig_path);
      else kc.loadFromDefault();
      if (r.context) kc.setCurrentContext(r.context);
      return {
        kc,
        batch: kc.makeApiClient(m.BatchV1Api),
        core: kc.makeApiClient(m.CoreV1Api),
        Log: m.Log,
      };
    })();
    return this.#client;
  }
}

interface KubeClient {
  readonly kc: KubeConfig;
  readonly batch: BatchV1Api;
  readonly core: CoreV1Api;
  readonly Log: typeof import('@kubernetes/client-node').Log;
}

function within(root: string, path: string): boolean {
  const rel = relative(root, path);
  return !rel.startsWith('..') && !isAbsolute(rel);
}

/** Why a finished task's declared outputs are not all on the workspace volume, if they are not. */
async function missingOutput(rec: TaskRecord): Promise<string | undefined> {
  for (const out of rec.task.files?.outputs ?? []) {
    const st = await lstat(join(rec.task.cwd, out)).catch(() => undefined);
    if (!st?.isFile())
      return `declared output ${out} was not written by the command (no regular file ${out} in ${rec.task.cwd})`;
  }
  return undefined;
}

function exitCodeOf(pods: readonly V1Pod[]): number | null {
  for (const p of [...pods].reverse()) {
    const t = p.status?.containerStatuses?.find((c) => c.name === CONTAINER)?.state?.terminated;
    if (t) return t.exitCode;
  }
  return null;
}

/** The init container, the task container's command, env and mount of a staged task's Job. */
function stageParts(
  plan: StagePlan,
  jobName: string,
  command: string,
  image: string,
  files: TaskRecord['task']['files'],
) {
  const mount = { name: STAGE_VOLUME, mountPath: STAGE_MOUNT };
  const env = [
    { name: 'COMPUTEPODS_STAGE_URL', value: k8sLiteral(plan.server.url) },
    { name: 'COMPUTEPODS_STAGE_TOKEN', value: plan.server.tokenFor(jobName) },
    { name: 'COMPUTEPODS_STAGE_CA', value: k8sLiteral(plan.server.caPem) },
    { name: 'COMPUTEPODS_JOB', value: jobName },
  ];
  const norm = (rel: string) => posix.normalize(rel);
  return {
    mount,
    env,
    init: {
      name: STAGE_IN_CONTAINER,
      image,
      command: ['/bin/sh', '-c', k8sLiteral(stageInScript(plan.inputs, plan.dirs))],
      env,
      volumeMounts: [mount],
    },
    main: {
      command: [
        '/bin/sh',
        '-c',
        k8sLiteral(
          stageOutWrapper((files?.outputs ?? []).map(norm), (files?.auxiliaries ?? []).map(norm)),
        ),
        'computepods-task',
        k8sLiteral(command),
      ],
    },
  };
}

/** The end of a log, for a reason: its last few lines, at most 800 characters. */
function tail(text: string): string {
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  return lines.slice(-4).join(' / ').slice(-800) || '(no output)';
}

/** Why the task container could not send its outputs back, read from the end of its log. */
async function stageOutFailure(logPath: string): Promise<string | undefined> {
  const text = await readTail(logPath, 4096).catch(() => '');
  return text.includes(STAGE_OUT_MARK) ? tail(text) : undefined;
}
