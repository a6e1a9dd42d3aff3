import { z } from 'zod';
import { InvalidNameError } from './errors.js';
import { RelativePath } from './paths.js';

/** Largest decoded chunk a publisher sends: its base64 stays far below NATS's 1 MiB default. */
export const LOG_CHUNK_MAX_BYTES = 256 * 1024;

/** Log bytes as base64 (RFC 4648, with padding), at most LOG_CHUNK_MAX_BYTES decoded. */
const LogData = z
  .string()
  .max(Math.ceil(LOG_CHUNK_MAX_BYTES / 3) * 4)
  .regex(/^[A-Za-z0-9+/]*={0,2}$/, 'base64');

/**
 * Bytes appended to a followed log file (`tail -f` over NATS), published on
 * `cp.<project>.logs.<pod>`. Data is base64 because a chunk may end inside a UTF-8 sequence
 * and logs may hold any bytes. `offset` lets a follower drop duplicates and notice gaps.
 */
export const LogChunk = z.object({
  /** The pod (or user machine) whose file this is. */
  pod: z.string().min(1).max(200),
  path: RelativePath,
  /** Byte offset of the first byte of `data` in the file. */
  offset: z.number().int().nonnegative(),
  /** The bytes, base64 (RFC 4648, with padding). */
  data: LogData,
  /** The file shrank below what was streamed: this chunk restarts it at offset 0. */
  truncated: z.boolean().default(false),
  /** The path now names another file (log rotation): this chunk starts the new one. */
  rotated: z.boolean().default(false),
});
export type LogChunk = z.infer<typeof LogChunk>;

/** The two outputs of a task that are published. */
export const TaskLogStream = z.enum(['stdout', 'stderr']);
export type TaskLogStream = z.infer<typeof TaskLogStream>;

/**
 * A piece of a task's stdout or stderr, published by the runner that runs it on
 * `cp.<project>.tasklog.<queue>.<task>.<stream>` (JetStream stream `cp_<project>_tasklogs`, so
 * a reader may come late or from another machine and resume). On one subject the pieces are
 * contiguous: each `offset` is the previous one plus its length and each `index` the previous
 * plus one, so a reader that checks both never shows a gap or a repeat without saying so.
 *
 * `offset` counts the bytes of the published log, over every attempt; `fileOffset` is where
 * the piece starts in the runner-side file of its attempt. Markers carry no data:
 * - `restart`: the task's file started over (the task ran again after a restart of its
 *   runner, or SLURM ran it again); what follows belongs to attempt `attempt`.
 * - `truncated`: the log reached `limitBytes`; what the task writes after is not published.
 * - `end`: the last message of this log: the task ended in `state` (with `exitCode`), and
 *   `droppedBytes` were written past the cap.
 */
export const TaskLogChunk = z.object({
  taskId: z.string().min(1).max(200),
  stream: TaskLogStream,
  offset: z.number().int().nonnegative(),
  index: z.number().int().nonnegative(),
  attempt: z.number().int().positive(),
  fileOffset: z.number().int().nonnegative(),
  data: LogData.default(''),
  mark: z.enum(['restart', 'truncated', 'end']).optional(),
  limitBytes: z.number().int().positive().optional(),
  droppedBytes: z.number().int().nonnegative().optional(),
  state: z.enum(['finished', 'failed', 'killed']).optional(),
  exitCode: z.number().int().nullable().optional(),
});
export type TaskLogChunk = z.infer<typeof TaskLogChunk>;

/**
 * A task id as one subject token: ids may hold '.', which NATS reads as a token separator,
 * so it is written as '%2E' ('%' is never in an id, so no two ids share a token).
 */
export function taskToken(taskId: string): string {
  if (!/^[A-Za-z0-9_.:-]{1,200}$/.test(taskId))
    throw new InvalidNameError('task id', taskId, '1 to 200 letters, digits and "_.:-"');
  return taskId.replaceAll('.', '%2E');
}
