import { streams, subjects } from '@computepods/protocol';
import type { Bus } from './bus.js';

const DAY = 24 * 3600_000;

/**
 * Dead letters carry up to 64 KiB of the message each, and a flood of bad input would otherwise
 * fill the project's storage quota and stop everything else being stored: the oldest go first.
 */
export const DLQ_MAX_MSGS = 100_000;
export const DLQ_MAX_BYTES = 128 * 1024 * 1024;

/**
 * Creates a project's streams (idempotent; every service calls it at start, so start order does
 * not matter). Work queues hold build requests and tasks until a chef or runner acks them.
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
  } = {},
): Promise<void> {
  const replicas = options.replicas;
  const p = project;
  const specs = [
    {
      name: streams.files(p),
      subjects: [subjects.filesChangedAll(p)],
      retention: 'limits',
      maxAgeMs: 7 * DAY,
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
      maxAgeMs: 7 * DAY,
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
  ] as const;
  for (const spec of specs)
    await bus.ensureStream({
      ...spec,
      subjects: [...spec.subjects],
      ...(replicas ? { replicas } : {}),
    });
}
