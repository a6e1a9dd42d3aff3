import { z } from 'zod';
import { RelativePath } from './paths.js';

/** Largest decoded chunk a publisher sends: its base64 stays far below NATS's 1 MiB default. */
export const LOG_CHUNK_MAX_BYTES = 256 * 1024;

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
  data: z
    .string()
    .max(Math.ceil(LOG_CHUNK_MAX_BYTES / 3) * 4)
    .regex(/^[A-Za-z0-9+/]*={0,2}$/, 'base64'),
  /** The file shrank below what was streamed: this chunk restarts it at offset 0. */
  truncated: z.boolean().default(false),
  /** The path now names another file (log rotation): this chunk starts the new one. */
  rotated: z.boolean().default(false),
});
export type LogChunk = z.infer<typeof LogChunk>;
