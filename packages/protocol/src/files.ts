import { z } from 'zod';
import { RelativePath } from './paths.js';

/** A lower-case hex SHA-256: the pattern, for schemas that test it in a loop (path-maps.ts). */
export const SHA256 = { pattern: /^[0-9a-f]{64}$/, message: 'a lower-case hex SHA-256' } as const;
export const Sha256 = z.string().regex(SHA256.pattern, SHA256.message);

export const FileEvent = z.object({
  kind: z.enum(['created', 'changed', 'deleted', 'moved']),
  path: RelativePath,
  from: RelativePath.optional(),
  size: z.number().int().nonnegative(),
  mtimeNs: z.string().regex(/^\d+$/),
  /** null for deleted files. */
  sha256: Sha256.nullable(),
});
export type FileEvent = z.infer<typeof FileEvent>;

/** A batch of file changes seen by one watcher (fswatcher in a pod, or inotify2nats). */
export const FilesChanged = z.object({
  /** The pod whose workspace now holds these bytes. */
  pod: z.string().min(1).max(200),
  events: z.array(FileEvent).min(1).max(5000),
});
export type FilesChanged = z.infer<typeof FilesChanged>;
