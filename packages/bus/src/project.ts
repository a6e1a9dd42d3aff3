import { buckets, streams, subjects } from '@computepods/protocol';
import type { Bus } from './bus.js';
import { retentionFromEnv } from './config.js';
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

/**
 * The max age a project bucket is kept at (the tasks and builds buckets: the records' age), or
 * undefined for buckets whose keys live until deleted (artefacts, rules, config, ...).
 */
export function projectBucketMaxAgeMs(
  project: string,
  bucket: string,
  env?: NodeJS.ProcessEnv,
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
