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
