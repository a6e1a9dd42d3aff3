import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { ProjectName } from './names.js';

export const SCHEMA_VERSION = 1;

/** The envelope every message carries; `body` is typed by `type` (see messages.ts). */
export const Envelope = z.object({
  v: z.literal(SCHEMA_VERSION),
  id: z.string().min(1).max(128),
  time: z.iso.datetime(),
  project: ProjectName,
  source: z.string().min(1).max(200),
  /** Correlation id: follows one change through build, task and result. */
  cid: z.string().min(1).max(128),
  type: z.string().min(1).max(64),
  body: z.unknown(),
});
export type Envelope<B = unknown> = Omit<z.infer<typeof Envelope>, 'body'> & { body: B };

export function newId(): string {
  return randomUUID();
}

export function envelope<B>(
  type: string,
  body: B,
  meta: { project: string; source: string; cid?: string | undefined; id?: string },
): Envelope<B> {
  return {
    v: SCHEMA_VERSION,
    id: meta.id ?? newId(),
    time: new Date().toISOString(),
    project: meta.project,
    source: meta.source,
    cid: meta.cid ?? newId(),
    type,
    body,
  };
}
