import { z } from 'zod';
import { MAX_GROUP_STEPS, MAX_TASK_ID } from './builds.js';
import { cappedText } from './capped-text.js';
import { TaskEnvironment } from './environments.js';
import { TaskLogStream } from './logs.js';
import { ServiceName } from './names.js';
import { RelativePath } from './paths.js';

/** The longest delay a Node timer can hold (2^31-1 ms, about 24.8 days). */
export const MAX_TIMEOUT_MS = 2 ** 31 - 1;

export const TaskState = z.enum([
  'created',
  'submitted',
  'running',
  'finished',
  'failed',
  'killed',
  'paused',
]);
export type TaskState = z.infer<typeof TaskState>;

export const TERMINAL_STATES: readonly TaskState[] = ['finished', 'failed', 'killed'];

/**
 * The files a task reads and writes, relative to its cwd. A resource that does not share the
 * pod's filesystem with its jobs (slurm_ssh), or whose jobs run as another user (slurm_sudo),
 * stages the inputs into the job folder, runs the command there, and brings the outputs back
 * into cwd, verified, before the task is recorded finished; an output the command did not
 * write fails the task. Every path is checked: no absolute path, no `..` leaving cwd.
 */
export const TaskFiles = z.object({
  inputs: z.array(RelativePath).max(10_000).default([]),
  outputs: z.array(RelativePath).min(1).max(10_000),
  /**
   * Files the command may write besides its outputs (.log, .blg): brought back with them where
   * the task ran elsewhere (a SLURM job folder) when it wrote them; never required.
   */
  auxiliaries: z.array(RelativePath).max(10_000).optional(),
});
export type TaskFiles = z.infer<typeof TaskFiles>;

/** Chef → runner: run this command on a computational resource. */
export const TaskSubmitted = z.object({
  taskId: z.string().regex(/^[A-Za-z0-9_.:-]{1,200}$/, 'letters, digits and "_.:-"'),
  buildId: z.string().max(64).optional(),
  resource: ServiceName,
  profile: z.string().max(200).optional(),
  /** Run by /bin/sh -c in cwd. Every value substituted into it was quoted by the chef. */
  command: z.string().min(1).max(100_000),
  cwd: z.string().min(1).max(4096),
  env: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/), z.string()).default({}),
  /**
   * At most 24 days: Node's timers hold 2^31-1 ms, and a longer delay fires at once (1e10 ms
   * failed the task as "timed out" the moment it started).
   */
  timeoutMs: z.number().int().positive().max(MAX_TIMEOUT_MS).optional(),
  gpu: z.boolean().default(false),
  /** The Python environment the command runs in (see TaskEnvironment); none: the runner's. */
  environment: TaskEnvironment.optional(),
  /** What the command reads and writes (see TaskFiles); without it, it runs in cwd itself. */
  files: TaskFiles.optional(),
  /**
   * The graph's step this task runs (MajorDomo's task id, `<rule>:<stem>`), which pass of it
   * (a cycle runs its steps pass after pass) and the chef that submitted it (as that chef says:
   * shown, never trusted): kept in the task's record, so the timeline can draw a cycle's passes
   * as such and a lane per chef, also for tasks run before the page (or MajorDomo) started.
   */
  step: z
    .object({
      id: z.string().min(1).max(MAX_TASK_ID),
      pass: z.number().int().min(1).max(1_000_000),
      chef: z.string().min(1).max(100).optional(),
      /**
       * The other steps a group's task runs (BuildRequested.group), with `id` the first: the
       * runner runs one task of each of them at a time, as of `id` (step-turns.ts).
       */
      also: z.array(z.string().min(1).max(MAX_TASK_ID)).max(MAX_GROUP_STEPS).optional(),
    })
    .optional(),
  /**
   * Which run of the task this is: 2 when MajorDomo queued it again because its runner stopped
   * answering before the task started (services/majordomo/src/runner-liveness.ts). At most once.
   */
  attempt: z.number().int().min(1).max(2).optional(),
});
export type TaskSubmitted = z.infer<typeof TaskSubmitted>;

const SUPERSEDED = 'superseded by task ';

/**
 * The reason a runner kills a task of a step with: a newer task of the same step came (the
 * runner runs one of a step at a time, services/runner/src/step-turns.ts). A chef whose build's
 * task ends so reports the build cancelled, not failed: MajorDomo plans it again.
 */
export function supersededReason(by: string, step: string): string {
  return `${SUPERSEDED}${by} (a newer build of step ${step})`;
}

export function isSupersededReason(reason: string | undefined): boolean {
  return reason?.startsWith(SUPERSEDED) === true;
}

/** Runner → everyone: a task moved to a new state. Recorded in KV before it is published. */
export const TaskStateChanged = z.object({
  taskId: z.string().min(1).max(200),
  buildId: z.string().max(64).optional(),
  resource: ServiceName,
  state: TaskState,
  previous: TaskState.optional(),
  exitCode: z.number().int().nullable().optional(),
  reason: cappedText(10_000).optional(),
  jobId: z.string().max(100).optional(),
  stdoutPath: z.string().max(4096).optional(),
  stderrPath: z.string().max(4096).optional(),
});
export type TaskStateChanged = z.infer<typeof TaskStateChanged>;

/** cpctrl/MajorDomo → runner: pause, resume or kill a task. */
export const TaskControl = z.object({
  taskId: z.string().min(1).max(200),
  action: z.enum(['pause', 'resume', 'kill']),
});
export type TaskControl = z.infer<typeof TaskControl>;

/**
 * runner → asker: the answer to a TaskControl, plain JSON (no envelope), given only by the
 * runner holding the task: the task's state after the action, or why it was refused (an
 * invalid request: CP_MESSAGE_INVALID and the field).
 */
export const TaskControlReply = z.object({
  ok: z.boolean(),
  result: z.object({ taskId: z.string(), state: z.string() }).optional(),
  error: z
    .object({ code: z.string(), message: z.string(), field: z.string().optional() })
    .optional(),
});
export type TaskControlReply = z.infer<typeof TaskControlReply>;

/**
 * The runner's KV record of a task (key: taskId in `cp_<p>_tasks`). Written before every
 * transition is acted on, so a restarted runner can reconcile; chefs watch it for the outcome.
 */
export const TaskRecord = z.object({
  task: TaskSubmitted,
  state: TaskState,
  /** The state a paused task returns to on resume. */
  pausedFrom: TaskState.optional(),
  runner: z.string().optional(),
  /**
   * The $SRV id of the runner process that took it (every record it writes names it). A runner
   * id may be used by another process later, on this machine or another; when the task is queued
   * again, MajorDomo names this process in the requeued handle (`instances`), so that a runner
   * looking for an earlier start trusts only that process's marks, also after MajorDomo itself
   * restarted and heard none of the dead runner's processes.
   */
  runnerInstance: z.string().max(64).optional(),
  /** The queue whose runner runs it (its logs are on subjects.taskLog of this queue). */
  queue: z.string().max(63).optional(),
  pid: z.number().int().optional(),
  jobId: z.string().optional(),
  exitCode: z.number().int().nullable().optional(),
  reason: z.string().optional(),
  stdoutPath: z.string().optional(),
  stderrPath: z.string().optional(),
  /**
   * Outputs an ended task wrote nothing to, as its runner saw before recording the end: their
   * logs on NATS hold no piece and no end marker, and this record is their end (readers end them
   * with its state: bus readTaskLog's `record`).
   */
  emptyLogs: z.array(TaskLogStream).max(2).optional(),
  /**
   * An ended task whose processes may still run: its end (killed, or failed on its timeout) was
   * recorded before they were signalled, as every transition is recorded before it is acted on,
   * and a command may outlive its SIGTERM (a trap) until the runner's SIGKILL. The runner takes
   * it off once it has seen the task's process group gone (a restarted runner, on adoption).
   * Chefs start nothing else that writes the task's outputs meanwhile (at most
   * CP_CHEF_STOP_WAIT_MS). Set only by backends that can tell: the local one.
   */
  stopping: z.literal(true).optional(),
  /** Backend data a restarted runner needs to find the task again (job dir, index, start). */
  handle: z.record(z.string(), z.unknown()).optional(),
  history: z.array(z.object({ state: TaskState, time: z.iso.datetime() })).default([]),
  updated: z.iso.datetime(),
});
export type TaskRecord = z.infer<typeof TaskRecord>;
