import { z } from 'zod';
import { ArtefactRecord } from './artefacts.js';
import { RelativePath } from './paths.js';

/** cpctrl → MajorDomo over NATS request/reply: `cp.<p>.api.status`. */
export const StatusRequest = z.object({}).default({});
export const StatusReply = z.object({
  project: z.string(),
  idle: z.boolean(),
  artefacts: z.array(ArtefactRecord),
  running: z.array(z.string()),
  queued: z.array(z.string()),
  nonConvergent: z
    .array(z.object({ component: z.number(), artefacts: z.array(z.string()), passes: z.number() }))
    .default([]),
});
export type StatusReply = z.infer<typeof StatusReply>;

/** `cp.<p>.api.build`: (re)build an artefact and what it needs. */
export const BuildArtefactRequest = z.object({
  path: RelativePath,
  force: z.boolean().default(false),
});
export const BuildArtefactReply = z.object({
  path: z.string(),
  accepted: z.boolean(),
  status: z.string(),
  message: z.string(),
});
export type BuildArtefactReply = z.infer<typeof BuildArtefactReply>;

/** Every reply that went wrong carries this, so the caller can print what to do next. */
export const ApiError = z.object({
  error: z.object({ code: z.string(), message: z.string(), field: z.string().optional() }),
});
export type ApiError = z.infer<typeof ApiError>;

/** `cp.<p>.api.why|artefact`: one artefact by path. */
export const PathRequest = z.object({ path: RelativePath });
export const WhyReply = z.array(z.object({ artefact: z.string(), because: z.string() }));
export const ArtefactReply = z.object({
  artefact: ArtefactRecord,
  producer: z.string().nullable(),
  why: WhyReply,
});
export type ArtefactReply = z.infer<typeof ArtefactReply>;

/** `cp.<p>.api.graph`: the graph as JSON (depgraph's export) or DOT text. */
export const GraphRequest = z.object({
  format: z.enum(['json', 'dot']).default('json'),
  /** DOT only: just the pending work (what a build would run), not the whole graph. */
  plan: z.boolean().default(false),
});
export const GraphReply = z.object({ format: z.enum(['json', 'dot']), graph: z.unknown() });

/**
 * An answer too big for one NATS message (the server's max_payload, 1 MB by default: a status of
 * ~3,500 artefacts), sent instead of the result: the result's JSON text is kept by the process
 * that answered (for a minute) and read in `parts`, one request each to
 * `subjects.apiChunk(project, instance)` with a ChunkRequest, answered by a ChunkReply; joined,
 * the text is the result, validated by the verb's own reply schema. One serialisation: the parts
 * are of one consistent answer, however the state moves meanwhile.
 */
export const ChunkedResult = z.object({
  instance: z.string().regex(/^[0-9a-f]{16}$/, 'instance: 16 hex digits'),
  id: z.string().regex(/^[0-9a-f]{24}$/, 'id: 24 hex digits'),
  parts: z.number().int().min(2).max(1_000_000),
});
export type ChunkedResult = z.infer<typeof ChunkedResult>;
export const ChunkRequest = z.object({
  id: ChunkedResult.shape.id,
  part: z.number().int().min(0).max(999_999),
});
export const ChunkReply = z.object({ text: z.string() });

/** `cp.<p>.api.builds`: builds in flight. */
export const BuildsReply = z.array(
  z.object({
    taskId: z.string(),
    buildId: z.string(),
    chef: z.string(),
    pass: z.number(),
    component: z.number(),
    cyclic: z.boolean(),
  }),
);

/** `cp.<p>.api.cancel`: cancel the build in flight for a task. */
export const CancelRequest = z.object({ taskId: z.string().min(1).max(600) });
export const CancelReply = z.object({ taskId: z.string(), cancelled: z.boolean() });
