import { z } from 'zod';
import { ArtefactRecord, ArtefactStatus } from './artefacts.js';
import { RelativePath } from './paths.js';

/**
 * cpctrl → MajorDomo over NATS request/reply: `cp.<p>.api.status` (and GET /api/status). A
 * summary by default; with `artefacts`, one page of the artefact records too, by path (in UTF-16
 * code unit order), starting after `cursor` (the reply's `next`), only paths starting with
 * `prefix` when given. At 100,000 artefacts the whole list is ~28 MB: asked for page by page.
 */
export const StatusRequest = z
  .object({
    artefacts: z.boolean().default(false),
    limit: z.number().int().min(1).max(10_000).default(1_000),
    cursor: z.string().min(1).max(4_096).optional(),
    prefix: z.string().min(1).max(4_096).optional(),
  })
  .prefault({});
export type StatusRequest = z.infer<typeof StatusRequest>;

/** The counts a status always carries, kept as records change (no pass over them per call). */
export const StatusSummary = z.object({
  /** Artefact records held. */
  artefacts: z.number().int().nonnegative(),
  /** Records per state (states with none left out). */
  byStatus: z.partialRecord(ArtefactStatus, z.number().int().nonnegative()),
  /** Builds in flight (requested of a chef, no result yet). */
  running: z.number().int().nonnegative(),
  /** Tasks to build that wait for a slot or for what they need (not blocked, not in flight). */
  queued: z.number().int().nonnegative(),
});
export type StatusSummary = z.infer<typeof StatusSummary>;

export const StatusReply = z.object({
  project: z.string(),
  idle: z.boolean(),
  summary: StatusSummary,
  /** The task ids in flight (at most the parallel build limit). */
  running: z.array(z.string()),
  /** The queued task ids: with a page of artefacts only (summary.queued counts them always). */
  queued: z.array(z.string()).default([]),
  nonConvergent: z
    .array(z.object({ component: z.number(), artefacts: z.array(z.string()), passes: z.number() }))
    .default([]),
  /** The page of artefact records asked for (`artefacts: true`), else none. */
  artefacts: z.array(ArtefactRecord).default([]),
  /** The cursor of the next page, when there are more records. */
  next: z.string().optional(),
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
