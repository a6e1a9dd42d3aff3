import { buckets, streams, subjects } from '@computepods/protocol';
import { z } from 'zod';
import type { Bus } from './bus.js';
import { ensureKvMaxAge } from './setup.js';

const DAY = 24 * 3600_000;

/**
 * Dead letters carry up to 64 KiB of the message each, and a flood of bad input would otherwise
 * fill the project's storage quota and stop everything else being stored: the oldest go first.
 */
export const DLQ_MAX_MSGS = 100_000;
export const DLQ_MAX_BYTES = 128 * 1024 * 1024;

/**
 * Task logs (stdout/stderr of every task, published as they grow): the whole stream is bounded
 * (the oldest go first when full), and each subject (one task's stdout or stderr) holds at most
 * TASK_LOG_MAX_MSGS_PER_SUBJECT pieces, a bound the runner stays under by itself (it stops with
 * a `truncated` marker first), so the server never drops the start of a log still being read.
 */
export const TASK_LOG_MAX_BYTES = 256 * 1024 * 1024;
export const TASK_LOG_MAX_MSGS_PER_SUBJECT = 20_000;
export const TASK_LOG_MAX_AGE_MS = DAY;

/**
 * Task records (KV `cp_<p>_tasks`, a key per task) and build results (KV `cp_<p>_builds`, a key
 * per build): each key is kept this long after it was last written, then the server drops it.
 * Without a bound both grow by a key per build for ever, on disk and in nats-server's memory (its
 * per-subject index costs ~150 bytes a key). What an expired key costs is at most a rebuild:
 * - a build result is the chef's and MajorDomo's result cache: without it the build runs again;
 * - a task record is what keeps a task id from running twice (the runner's first write is a
 *   create) and what a restarted runner adopts. A record is rewritten only when its task
 *   changes state, so the age must exceed the longest a task may stay queued or running:
 *   the default is twice the chef's own limit (CP_CHEF_TASK_WAIT_MS, 7 days);
 * - it must exceed the task and build queues' duplicate windows (10 minutes), or a task sent
 *   again within the window after its record went would be dropped as a duplicate and never run.
 */
export const RECORD_MAX_AGE_MS = 14 * DAY;
export const RECORD_MIN_AGE_MS = 15 * 60_000;

/**
 * Files changed and build events (results, task states, cancels): MajorDomo consumes both as
 * they come, so they are history once read. A MajorDomo down longer than this misses the file
 * changes published meanwhile.
 */
export const EVENT_MAX_AGE_MS = 7 * DAY;

/** A number of seconds (at least `minS`, above 0 in any case) as milliseconds. */
const seconds = (name: string, what: string, minS = 0) =>
  z
    .string()
    .trim()
    .transform((raw, ctx) => {
      const s = Number(raw);
      if (!Number.isFinite(s) || s <= 0 || s < minS) {
        ctx.addIssue({
          code: 'custom',
          message: `${name} must be ${minS > 0 ? `at least ${minS}` : 'a positive number of'} seconds (${what}), got ${JSON.stringify(raw)}`,
        });
        return z.NEVER;
      }
      return Math.max(1, Math.round(s * 1000));
    });

const RetentionEnv = z.object({
  CP_RECORD_MAX_AGE_S: seconds(
    'CP_RECORD_MAX_AGE_S',
    'how long task records and build results are kept',
    RECORD_MIN_AGE_MS / 1000,
  ).optional(),
  CP_EVENT_MAX_AGE_S: seconds(
    'CP_EVENT_MAX_AGE_S',
    'how long file changes and build events are kept',
  ).optional(),
  CP_TASK_LOG_MAX_AGE_S: seconds('CP_TASK_LOG_MAX_AGE_S', 'how long task logs are kept').optional(),
});

export interface Retention {
  /** KV tasks and builds: CP_RECORD_MAX_AGE_S, default RECORD_MAX_AGE_MS (14 days). */
  readonly recordMaxAgeMs: number;
  /** Streams files and events: CP_EVENT_MAX_AGE_S, default EVENT_MAX_AGE_MS (7 days). */
  readonly eventMaxAgeMs: number;
  /** Stream tasklogs: CP_TASK_LOG_MAX_AGE_S, default TASK_LOG_MAX_AGE_MS (a day). */
  readonly taskLogMaxAgeMs: number;
}

/** How long a project's history is kept, from the environment (a bad value throws, naming it). */
export function retentionFromEnv(env: NodeJS.ProcessEnv = process.env): Retention {
  const given = (v: string | undefined) => (v === undefined || v.trim() === '' ? undefined : v);
  const parsed = RetentionEnv.safeParse({
    CP_RECORD_MAX_AGE_S: given(env.CP_RECORD_MAX_AGE_S),
    CP_EVENT_MAX_AGE_S: given(env.CP_EVENT_MAX_AGE_S),
    CP_TASK_LOG_MAX_AGE_S: given(env.CP_TASK_LOG_MAX_AGE_S),
  });
  if (!parsed.success) throw new Error(parsed.error.issues.map((i) => i.message).join('; '));
  return {
    recordMaxAgeMs: parsed.data.CP_RECORD_MAX_AGE_S ?? RECORD_MAX_AGE_MS,
    eventMaxAgeMs: parsed.data.CP_EVENT_MAX_AGE_S ?? EVENT_MAX_AGE_MS,
    taskLogMaxAgeMs: parsed.data.CP_TASK_LOG_MAX_AGE_S ?? TASK_LOG_MAX_AGE_MS,
  };
}

/** How long task logs are kept: CP_TASK_LOG_MAX_AGE_S (seconds), default one day. */
export function taskLogMaxAgeMs(env: NodeJS.ProcessEnv = process.env): number {
  return retentionFromEnv({ CP_TASK_LOG_MAX_AGE_S: env.CP_TASK_LOG_MAX_AGE_S }).taskLogMaxAgeMs;
}

/**
 * The max age a project bucket is kept at (the tasks and builds buckets: the records' age), or
 * undefined for buckets whose keys live until deleted (artefacts, rules, config, ...).
 */
export function projectBucketMaxAgeMs(
  project: string,
  bucket: string,
  env: NodeJS.ProcessEnv = process.env,
): number | undefined {
  let aged: string[];
  try {
    aged = [buckets.tasks(project), buckets.builds(project)];
  } catch {
    return undefined; // not a project's name (the registry's connection, say)
  }
  return aged.includes(bucket) ? retentionFromEnv(env).recordMaxAgeMs : undefined;
}

/**
 * Creates a project's streams (idempotent; every service calls it at start, so start order does
 * not matter). Work queues hold build requests and tasks until a chef or runner acks them. Also
 * sets the max age of the tasks and builds buckets that exist (their records' retention).
 */
export async function ensureProjectStreams(
  bus: Bus,
  project: string,
  options: {
    readonly replicas?: number;
    /**
     * The dead-letter stream's byte bound. JetStream reserves a stream's max_bytes from its
     * account's storage quota at creation, so a project with a small quota gets a smaller bound
     * (provisioning passes one eighth of the quota); DLQ_MAX_BYTES at most.
     */
    readonly dlqMaxBytes?: number;
    /**
     * The task-log stream's byte bound, reserved from the quota like the dead letters' (provisioning
     * passes a quarter of it); TASK_LOG_MAX_BYTES at most.
     */
    readonly taskLogMaxBytes?: number;
    /** How long task logs are kept (default taskLogMaxAgeMs(): CP_TASK_LOG_MAX_AGE_S or a day). */
    readonly taskLogMaxAgeMs?: number;
    /** How long file changes and build events are kept (default CP_EVENT_MAX_AGE_S or 7 days). */
    readonly eventMaxAgeMs?: number;
    /** How long task records and build results are kept (default CP_RECORD_MAX_AGE_S or 14 days). */
    readonly recordMaxAgeMs?: number;
  } = {},
): Promise<void> {
  const replicas = options.replicas;
  const retention = retentionFromEnv();
  const eventMaxAgeMs = options.eventMaxAgeMs ?? retention.eventMaxAgeMs;
  const p = project;
  const specs = [
    {
      name: streams.files(p),
      subjects: [subjects.filesChangedAll(p)],
      retention: 'limits',
      maxAgeMs: eventMaxAgeMs,
    },
    {
      name: streams.builds(p),
      subjects: [subjects.buildRequestAll(p)],
      retention: 'workqueue',
      duplicateWindowMs: 10 * 60_000,
    },
    {
      name: streams.events(p),
      subjects: [subjects.buildResult(p), subjects.taskState(p), subjects.buildCancel(p)],
      retention: 'limits',
      maxAgeMs: eventMaxAgeMs,
    },
    {
      name: streams.tasks(p),
      subjects: [subjects.tasksAll(p)],
      retention: 'workqueue',
      duplicateWindowMs: 10 * 60_000,
    },
    {
      name: streams.deadLetters(p),
      subjects: [`cp.${p}.dlq.*`],
      retention: 'limits',
      maxAgeMs: 30 * DAY,
      maxMsgs: DLQ_MAX_MSGS,
      maxBytes: Math.min(options.dlqMaxBytes ?? DLQ_MAX_BYTES, DLQ_MAX_BYTES),
    },
    {
      name: streams.taskLogs(p),
      subjects: [subjects.taskLogAll(p)],
      retention: 'limits',
      maxAgeMs: options.taskLogMaxAgeMs ?? retention.taskLogMaxAgeMs,
      maxBytes: Math.min(options.taskLogMaxBytes ?? TASK_LOG_MAX_BYTES, TASK_LOG_MAX_BYTES),
      maxMsgsPerSubject: TASK_LOG_MAX_MSGS_PER_SUBJECT,
      // A restarted runner reads the last piece of its own tasks' logs by subject.
      allowDirect: true,
    },
  ] as const;
  for (const spec of specs)
    await bus.ensureStream({
      ...spec,
      subjects: [...spec.subjects],
      ...(replicas ? { replicas } : {}),
    });
  // The buckets whose keys age: created with their max age by whoever opens them first
  // (Bus.kv); made before, or with another setting, they are changed here (an upgrade).
  const recordMaxAgeMs = options.recordMaxAgeMs ?? retention.recordMaxAgeMs;
  for (const bucket of [buckets.tasks(p), buckets.builds(p)])
    await ensureKvMaxAge(bus.jsm, bucket, recordMaxAgeMs);
}
