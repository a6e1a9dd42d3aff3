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
