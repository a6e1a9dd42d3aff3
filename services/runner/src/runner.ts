import { createWriteStream } from 'node:fs';
import { type Bus, ensureProjectStreams, errorReply, type Service } from '@computepods/bus';
import {
  createExecutor,
  type Executor,
  isTerminal,
  RecordFailedError,
  type RetryPolicy,
  type SubmitOptions,
  TaskStages,
  type TaskStaging,
} from '@computepods/executors';
import {
  buckets,
  pixiNote,
  streams,
  subjects,
  type TaskControlReply,
  TaskRecord,
  type TaskSubmitted,
} from '@computepods/protocol';
import type { RunnerConfig } from './config.js';
import { RecordConflictError } from './errors.js';
import { localJobsDir } from './jobs-dir.js';
import { KvRecords, RECORD_RETRY } from './kv-records.js';
import { isPilotResource } from './pilot-host.js';
import { type PilotManager, startPilotManager } from './pilot-manager.js';
import { reclaimPulled } from './reclaim.js';
import { loadProfile, loadQueue, loadResource } from './resources.js';
import { watchLiveness } from './runner-liveness.js';
import { StepTurns } from './step-turns.js';
import { type AdmissionPolicy, refusalOf } from './task-admission.js';
import { TaskEvents } from './task-events.js';
import { TaskLogPublisher, taskLogSettings } from './task-log-publisher.js';
import { servedProfile } from './task-profile.js';
import { missingRoots, rootsLabel } from './workspace-roots.js';

const PARSED: SubmitOptions = { parsed: true };

/**
 * Ended tasks younger than this are adopted too when killed or still `stopping` (a timeout), so
 * a kill recorded just before a crash is still carried out, and the task's end seen.
 */
const ADOPT_KILLED_MS = 60 * 60_000;

/** A started runner; stop() leaves its bus open (main.ts, which connected it, closes it). */
export interface RunningRunner extends Service {
  readonly executor: Executor;
  /** Pilot mode (slurm_sudo or slurm_ssh with pilot_config): the manager of the pilot jobs. */
  readonly pilots?: PilotManager | undefined;
  /** Takes no more tasks from the queue (those in hand go on). */
  stopIntake(): Promise<void>;
}

export interface RunnerOptions {
  /**
   * Pilot workers: a task's message is acknowledged when the task ends, not once it is
   * recorded, and pulled only when an intake slot is free, so a worker holds no more tasks
   * than its intake and leaves the rest to the others.
   */
  readonly holdUntilEnd?: boolean;
  /** Unacknowledged tasks over every runner of the queue (default intake × 4). */
  readonly maxAckPending?: number;
  /** Pilot workers: declared files staged by the runner that started them (pilot-staging.ts). */
  readonly staging?: TaskStaging;
  /** Pilot workers: why a task asking for a GPU is refused (see AdmissionPolicy.noGpu). */
  readonly noGpu?: string;
  /** Tries of a task record write that failed (default RECORD_RETRY, about 25 s). */
  readonly recordRetry?: RetryPolicy;
}

/**
 * Runs tasks from the resource's work queue through an executor (local, slurm_sudo or
 * slurm_ssh, from the resource's configuration). A task is acknowledged once its "created"
 * record is in KV; every later transition is recorded (revision-checked) before it is acted
 * on, then published on the task-state subject. On start the runner adopts the unfinished
 * records it wrote before a crash and reconciles them with SLURM, pids and exit files, and has
 * the task messages a killed runner pulled but never recorded delivered again at once.
 * Pause, resume and kill arrive on cp.<project>.task.control.
 */
export async function startRunner(
  bus: Bus,
  cfg: RunnerConfig,
  options: RunnerOptions = {},
): Promise<RunningRunner> {
  const p = cfg.project;
  await ensureProjectStreams(bus, p);
  // Its gets (a task queued again, read back as MajorDomo rewrote it; a task that has a record
  // already) come from the bucket's leader: on a cluster a replica may lag behind a write just
  // made (see KvSpec.leaderReads). Writes go by revision, and none of this is per task.
  const kv = await bus.kv(buckets.tasks(p), TaskRecord, { history: 5, leaderReads: true });
  const records = new KvRecords(kv);
  const queue = await loadQueue(bus, cfg);
  const resource = await loadResource(bus, cfg, queue);
  const profile = await loadProfile(bus, cfg, resource, queue);
  // With a queue record the resource is the queue's (a queue's name need not be its resource's).
  const rc: RunnerConfig = queue ? { ...cfg, resource: queue.queue.resource } : cfg;
  const cids = new Map<string, string>();
  const log = bus.logger;
  // The liveness signal: MajorDomo PINGs `$SRV.PING.runner` and resolves the tasks of a runner id
  // that no instance has answered for CP_RUNNER_DEAD_S (services/majordomo/src/runner-liveness.ts).
  const srvMeta = bus.srv?.identity.metadata;
  if (srvMeta) Object.assign(srvMeta, { runner: rc.runnerId, queue: rc.queue });
  const policy: AdmissionPolicy = {
    resource: rc.resource,
    profile: servedProfile(cfg, queue, profile),
    workspaceRoots: rc.workspaceRoots,
    // Over SSH a task without declared files runs in cwd on the cluster, not here.
    // A pilot's staged task runs in a folder of its own: its cwd is checked by the runner that
    // stages it, where the workspace is (the job user may not read it).
    remoteCwd: (task) =>
      (resource.type === 'slurm_ssh' && !task.files) || (!!options.staging && !!task.files),
    noGpu: options.noGpu,
  };
  const pixi = pixiNote(resource);
  if (pixi) log.warn({ resource: rc.resource }, pixi);
  if (rc.workspaceRoots.length === 0)
    log.error(
      'no workspace roots: this runner refuses every task until CP_WORKSPACE_ROOTS (colon-separated absolute paths) or CP_WORKSPACE is set to the workspaces its tasks may run in',
    );
  else {
    const missing = await missingRoots(rc.workspaceRoots);
    if (missing.length)
      log.warn(
        { missing, roots: rc.workspaceRoots },
        'workspace roots that do not exist: no task runs in them until they do',
      );
  }

  // For measuring (CP_TASK_STAGES_FILE): a JSON line per task, stage by stage (task-stages.ts).
  const stagesOut = cfg.stagesFile ? createWriteStream(cfg.stagesFile, { flags: 'a' }) : undefined;
  stagesOut?.on('error', (err) => log.warn({ err: String(err) }, 'cannot write the stages file'));
  const stages = stagesOut
    ? new TaskStages((line) => stagesOut.write(`${JSON.stringify(line)}\n`))
    : undefined;

  const events = new TaskEvents(bus, cfg.eventHoldMs);
  // Local tasks queued while the runner showed no silence start before their running record.
  const liveness = resource.type === 'local' ? watchLiveness(bus) : undefined;
  // Task stdout/stderr on NATS as they grow (task-log-publisher.ts).
  const taskLogs = new TaskLogPublisher({
    bus,
    queue: rc.queue,
    settings: taskLogSettings(cfg.taskLogs, resource.type),
    read: (rec, stream, offset, max) => executor.readLog(rec, stream, offset, max),
  });
  // Local task folders per project (jobs-dir.ts); a pilot worker's in its pilot's folder.
  const jobsDir = localJobsDir(resource, p, options.holdUntilEnd === true);
  const executor = createExecutor({
    resource,
    resourceId: rc.resource,
    profile,
    runner: rc.runnerId,
    queue: rc.queue,
    // The one retry of a record write is the executor's; the hook below writes once.
    recordRetry: options.recordRetry ?? RECORD_RETRY,
    backendOptions: {
      keep: rc.jobKeep,
      // Task folders made before they moved to projects/<project>/ are swept from there too.
      // It marks that folder as its own, by this process's $SRV id: another runner taking a task
      // of it queued again after its death looks there for its start when MajorDomo last heard
      // this process (executors' LocalBackend.earlierStart).
      ...(jobsDir && resource.type === 'local'
        ? {
            jobsDir,
            oldJobsDir: resource.jobs_local_dir,
            runnerMark: rc.runnerId,
            ...(bus.srv ? { runnerInstance: bus.srv.id } : {}),
          }
        : {}),
      // Nothing a log is still to be read from is swept, whatever the keep time.
      unpublishedLogs: () => taskLogs.unpublished(),
      ...(options.staging ? { staging: options.staging } : {}),
      ...(rc.kubernetesStaging ? { kubernetesStaging: rc.kubernetesStaging } : {}),
      ...(stages ? { stages } : {}),
      ...(liveness ? { liveness } : {}),
      ...(cfg.pidHoldMs !== undefined ? { pidHoldMs: cfg.pidHoldMs } : {}),
    },
    hooks: {
      record: (rec) => {
        events.beforeWrite();
        return records.write({ ...rec, queue: rc.queue });
      },
      // A plain publish: the events stream stores it all the same, and the record in KV, written
      // before, is the truth; waiting for a JetStream ack per event only cost a round trip each.
      // One event per record write, for the state it ended in: a task admitted straight to
      // running is announced running (previous: submitted), its created and submitted being in
      // the record's history; readers follow running and the ends (the UI, chaos, the chef's
      // record watch), and each event is a message the events stream stores. While tasks run,
      // an event may wait a moment for the next record write to share its socket write
      // (task-events.ts).
      publish: (event, rec, passed) => {
        // Running on its way to its end in one write (a local task ended before its running
        // write was issued): the end follows at once, and its logs are taken up from there.
        if (!(passed && event.state === 'running')) taskLogs.onState(rec);
        if (!passed) events.emit(event, cids.get(event.taskId));
        if (isTerminal(event.state)) cids.delete(event.taskId);
      },
      log: (level, msg, data) => log[level](data ?? {}, msg),
      // The outputs a local task left empty are listed in its end record, and their logs get no
      // end marker (two stored messages less for a quiet task). Not elsewhere: a look at the
      // files before the end is recorded would be a command over sudo or SSH.
      ...(resource.type === 'local'
        ? {
            beforeEnd: async (rec: TaskRecord) => {
              const emptyLogs = await taskLogs.emptyAtEnd(rec);
              return emptyLogs.length ? { emptyLogs } : {};
            },
          }
        : {}),
    },
  });

  // Reconcile before taking new work: what this runner had in flight when it died.
  const mine: TaskRecord[] = [];
  const entries = await kv.entries();
  for (const [id, { value, revision }] of entries) {
    if (value.task.resource !== rc.resource || value.runner !== rc.runnerId) continue;
    const recentKill =
      (value.state === 'killed' || value.stopping === true) &&
      Date.now() - Date.parse(value.updated) < ADOPT_KILLED_MS;
    if (isTerminal(value.state) && !recentKill) continue;
    records.known(id, revision);
    mine.push(value);
  }
  if (mine.length) log.info({ tasks: mine.length }, 'adopting tasks from before a restart');
  // Logs of tasks that ended before the restart are finished, and held, before the executor
  // adopts and so sweeps: none of their files goes before their last piece is published.
  taskLogs.resumeEnded(
    [...entries.values()].map((e) => e.value),
    rc.runnerId,
    new Set(mine.map((r) => r.task.taskId)),
  );
  await executor.adopt(mine);
  const steps = new StepTurns(executor, log);
  steps.adopt(mine);
  taskLogs.follow(executor.list());

  // Pilot mode: pilot jobs' workers take the tasks; this runner only follows the demand.
  const pilots = isPilotResource(resource)
    ? await startPilotManager({
        bus,
        cfg: rc,
        resource,
        profile,
        durable: `runner-${rc.queue}`,
        servedProfile: policy.profile,
        consumer: { maxDeliver: 10, ackWaitMs: rc.ackWaitMs ?? 30_000 },
      })
    : undefined;
  // What a killed runner had pulled and not recorded is handed out again now, not after the
  // ack wait. Not by pilot workers: their pending messages are tasks other live pilots run.
  if (!pilots && !options.holdUntilEnd)
    await reclaimPulled(bus, { stream: streams.tasks(p), durable: `runner-${rc.queue}`, log });
  const consumer = pilots
    ? undefined
    : await bus.consume({
        stream: streams.tasks(p),
        durable: `runner-${rc.queue}`,
        filterSubject: subjects.tasks(p, rc.queue),
        accept: ['task.submitted'],
        concurrency: rc.intake,
        maxDeliver: 10,
        ...(rc.ackWaitMs ? { ackWaitMs: rc.ackWaitMs } : {}),
        ...(options.maxAckPending ? { maxAckPending: options.maxAckPending } : {}),
        ...(options.holdUntilEnd ? { prefetch: false } : {}),
        // A plain ack: the task's record is in KV before it, and a redelivered task is never run
        // again (already ours, or its record exists), so confirming each ack was a round trip
        // a task for nothing.
        confirmAck: false,
        handler: async (msg, ctx) => {
          await accept(msg.body, msg.cid, ctx.logger);
          if (options.holdUntilEnd && executor.get(msg.body.taskId))
            await executor.wait(msg.body.taskId);
          // No flush of the held events here: the plain ack waits for the connection's next
          // write (bus consume.ts, withNextWrite), so publishing them now would make the write
          // that both then wait for. They go with the next record write (another lane's end or
          // start, this task's end) or at the hold's end, and the ack with them.
        },
      });

  // A task here is its message's body, which the bus decoded with TaskSubmitted (consume's
  // accept): the executor takes it as it is.
  async function accept(task: TaskSubmitted, cid: string, logger: typeof log): Promise<void> {
    if (executor.get(task.taskId)) return; // redelivered: already ours
    stages?.mark(task.taskId, 'intake');
    // Checked before anything is accepted: a refused task is recorded failed, never run, and
    // its message acknowledged (it would fail the same way again).
    const refusal = await refusalOf(task, policy);
    stages?.mark(task.taskId, 'admitted');
    const prior = (task.attempt ?? 1) > 1 ? await takeRequeued(task, logger) : undefined;
    if ((task.attempt ?? 1) > 1 && !prior) return;
    cids.set(task.taskId, cid);
    try {
      if (refusal) {
        await executor.refuse(task, refusal.message, PARSED);
        logger.warn(
          {
            taskId: task.taskId,
            field: refusal.field,
            code: refusal.code,
            reason: refusal.message,
          },
          'task refused',
        );
      } else
        await steps.take(task, () =>
          prior ? executor.submitRequeued(task, prior, PARSED) : executor.submit(task, PARSED),
        );
    } catch (err) {
      cids.delete(task.taskId);
      stages?.drop(task.taskId);
      // The first record is a create: it fails when the task has a record already. Done, or in
      // the hands of another runner (which adopts it if it restarts): not again.
      if (!(err instanceof RecordFailedError) || !(err.cause instanceof RecordConflictError))
        throw err;
      const existing = await kv.get(task.taskId).catch(() => undefined);
      logger.info(
        { taskId: task.taskId, state: existing?.value.state, runner: existing?.value.runner },
        'task already has a record; not running it again',
      );
    }
  }

  /**
   * A task MajorDomo queued again (its runner stopped answering, its start not recorded) has a
   * record already: `created`, without a runner, at this attempt. Its revision is taken as this
   * runner's own, so the first write of the task updates exactly that record: of two runners
   * taking it, one writes, the other's write conflicts and it leaves the task. Returns that
   * record, for the executor to look for a start of the attempt before (submitRequeued).
   * Anything else (taken, ended): undefined, not run.
   */
  async function takeRequeued(
    task: TaskSubmitted,
    logger: typeof log,
  ): Promise<TaskRecord | undefined> {
    const existing = await kv.get(task.taskId);
    const rec = existing?.value;
    if (existing && rec?.state === 'created' && !rec.runner && rec.task.attempt === task.attempt) {
      records.known(task.taskId, existing.revision);
      return rec;
    }
    logger.info(
      { taskId: task.taskId, attempt: task.attempt, state: rec?.state, runner: rec?.runner },
      'task queued again is no longer waiting for a runner; not running it',
    );
    return undefined;
  }

  // An invalid request is dead-lettered and answered as a validation error naming the field.
  const control = bus.listen(subjects.taskControl(p), {
    accept: ['task.control'],
    invalidMsg: 'invalid task control dead-lettered',
    answerInvalid: true,
    handler: async ({ body }, m) => {
      if (!executor.get(body.taskId)) return; // another runner's task
      let reply: TaskControlReply;
      try {
        const rec =
          body.action === 'pause'
            ? await executor.pause(body.taskId)
            : body.action === 'resume'
              ? await executor.resume(body.taskId)
              : await executor.kill(body.taskId);
        reply = { ok: true, result: { taskId: body.taskId, state: rec.state } };
      } catch (err) {
        const e = errorReply(err);
        log.warn({ err: e.message, taskId: body.taskId }, 'task control refused');
        reply = { ok: false, error: e };
      }
      if (m.reply) m.respond(JSON.stringify(reply));
    },
  });

  log.info(
    {
      resource: rc.resource,
      type: resource.type,
      runner: rc.runnerId,
      profile: policy.profile,
      workspaceRoots: rootsLabel(rc.workspaceRoots),
    },
    'runner ready',
  );
  return {
    executor,
    pilots,
    async stopIntake() {
      await consumer?.stop();
    },
    async stop() {
      control.unsubscribe();
      await pilots?.stop();
      await consumer?.stop();
      await taskLogs.close();
      await executor.close();
      liveness?.close();
      events.flush();
      stagesOut?.end();
    },
  };
}
