import { z } from 'zod';
import { cappedText } from './capped-text.js';
import { SHA256, Sha256 } from './files.js';
import { pathList, pathRecord } from './path-maps.js';
import { MAX_PATH_BYTES } from './paths.js';

/**
 * A stem is bound from a path (at most MAX_PATH_BYTES; with several placeholders it is
 * `name=value,…`, a little longer), and a task id is `<rule>:<stem>`: limits any valid path
 * fits, so a long source path never makes a request MajorDomo cannot send (a 509-character
 * path broke the old 500).
 */
export const MAX_STEM = 2 * MAX_PATH_BYTES;
export const MAX_TASK_ID = MAX_STEM + 200;

/** The most steps one request builds (BuildRequested.group): its first and the group's. */
export const MAX_GROUP_STEPS = 64;

/**
 * A further step a group request builds (BuildRequested.group): a step of the same rule, chef
 * and pass as the request's own, named as the request names its own.
 */
export const GroupStep = z.object({
  taskId: z.string().min(1).max(MAX_TASK_ID),
  stem: z.string().max(MAX_STEM),
  outputs: pathList({ min: 1 }),
});
export type GroupStep = z.infer<typeof GroupStep>;

/**
 * Attempt n of a build runs as task `b-<buildId>` (n = 0), then `b-<buildId>-<n>`: numbered, so
 * that any chef (one restarted, a replica) and MajorDomo find a build's attempts by reading the
 * records in turn. With a name only its chef knew, a chef restarted while an attempt's task was
 * still running started another beside it, and both ran to their end (pnpm bench chaos: build
 * 7b8b3dcc's task `…-mx9kpsbp25` recorded running, its runner cut off; the new chef's
 * `…-mx9kpy4a02` ran and finished, then the first).
 */
export function attemptTaskId(buildId: string, n: number): string {
  return n === 0 ? `b-${buildId}` : `b-${buildId}-${n}`;
}

/** MajorDomo → chef: build one task instance with exactly these input hashes. */
export const BuildRequested = z.object({
  /** Derived from (rule, target, input hashes): a duplicate request has the same id. */
  buildId: z.string().regex(/^[0-9a-f]{16,64}$/),
  taskId: z.string().min(1).max(MAX_TASK_ID),
  ruleId: z.string().min(1).max(100),
  chef: z.string().min(1).max(100),
  stem: z.string().max(MAX_STEM),
  // Path-keyed records and path lists checked in one loop each (path-maps.ts): a request and a
  // result are parsed by their sender and their receiver, once per build.
  inputs: pathRecord(SHA256),
  outputs: pathList({ min: 1 }),
  pass: z.number().int().min(1),
  /** Pod holding each input hash, for chefs that must fetch inputs. */
  locations: pathRecord(z.string()).default({}),
  /**
   * The task's last successful run as the graph compares it (inputs: file hashes, or projected
   * hashes for the inputs its rule projects; outputs: cutoff digests). Sent for a rule with
   * projections: when nothing the rule reads changed since (a source edited outside its
   * projection) and its outputs are as that run left them, the chef reports them without running.
   */
  lastRun: z
    .object({
      inputs: pathRecord(z.string().min(1).max(128)),
      outputs: pathRecord(z.string().min(1).max(128)),
    })
    .optional(),
  /**
   * The MajorDomo that sent it as its project's leader (standby mode, CP_MAJORDOMO_HA): its id
   * and lease epoch. The server already refuses a stale leader's request (fence.ts); this says
   * who sent each one, for logs and tests.
   */
  leader: z
    .object({ id: z.string().min(1).max(200), epoch: z.number().int().positive() })
    .optional(),
  /**
   * The sender hears results from the builds bucket's own stream (MajorDomo's durable
   * `majordomo-builds`): the chef stores the result there and publishes no build.result, one
   * stored message and one round trip a build fewer. Absent (an older MajorDomo, a test asking
   * in its place): the result is stored and published as build.result too.
   */
  resultFromRecord: z.literal(true).optional(),
  /**
   * More steps of the same rule this one request builds (a group: MajorDomo's CP_GROUP_BUILDS
   * packs ready steps of one rule when more are ready than run at once). `taskId`, `stem` and
   * `outputs` are the first step's; `inputs` and `locations` hold every step's. The build id is
   * the group's, one task runs the steps' commands one after another, and the result is the
   * group's: it succeeds when every step did, and says what each step's run revealed
   * (BuildResult.steps). Never with `lastRun`: a rule with projections is not grouped.
   */
  group: z
    .array(GroupStep)
    .min(1)
    .max(MAX_GROUP_STEPS - 1)
    .optional(),
});
export type BuildRequested = z.infer<typeof BuildRequested>;

export const OutputRecord = z.object({
  sha256: Sha256,
  size: z.number().int().nonnegative(),
  /**
   * The file's mtime (ns since the epoch) when the chef hashed it, on the result's pod: a file
   * event from that pod with an older mtime is about an earlier write, not an edit after it.
   */
  mtimeNs: z.string().regex(/^\d+$/).optional(),
});

/** Projection key (see InputProjection) → SHA-256 of the projected bytes. */
export const ProjectedHashes = z.record(z.string().regex(/^[0-9a-f]{16}$/), Sha256);
export type ProjectedHashes = z.infer<typeof ProjectedHashes>;

/** Chef → MajorDomo. */
export const BuildResult = z.object({
  buildId: z.string().min(1).max(64),
  taskId: z.string().min(1).max(MAX_TASK_ID),
  chef: z.string().min(1).max(100),
  pod: z.string().min(1).max(200),
  status: z.enum(['succeeded', 'failed', 'cancelled']),
  outputs: pathRecord(OutputRecord).default({}),
  /** Hash used for early cutoff (ignore patterns applied); equals sha256 when none. */
  cutoff: pathRecord(SHA256).default({}),
  discovered: pathList().default([]),
  /** Projected hashes of outputs, for the chef's rules that project them (an .aux for bibtex). */
  projections: pathRecord(ProjectedHashes).default({}),
  /** Projected hashes of the inputs this build read, for its own rule's projections. */
  inputProjections: pathRecord(ProjectedHashes).default({}),
  /** True when nothing the rule reads changed since lastRun: the outputs were kept, nothing ran. */
  kept: z.boolean().optional(),
  logPath: z.string().max(4096).optional(),
  durationMs: z.number().nonnegative(),
  error: cappedText(10_000).optional(),
  /**
   * Cancelled because an input has other bytes than requested: what the pod holds now. A change
   * MajorDomo may have missed (a file event dropped while the build that wrote it was in flight).
   */
  inputsNow: pathRecord(OutputRecord).default({}),
  /**
   * The request message this result answered, when its sender hears results from the builds
   * bucket (BuildRequested.resultFromRecord): a redelivery of that message finds it answered
   * (its sender heard the put) and writes nothing; another request for the build is answered by
   * writing the record again. What the build.result message id `result-<build>-<request>` did.
   */
  answers: z.string().min(1).max(128).optional(),
  /**
   * A group's result (BuildRequested.group): the dependencies each step's run revealed, by the
   * step's task id, every step's (the first one's too); `discovered` is then their union.
   */
  steps: z
    .record(z.string().min(1).max(MAX_TASK_ID), pathList())
    .refine((r) => Object.keys(r).length <= MAX_GROUP_STEPS, {
      message: `at most ${MAX_GROUP_STEPS} steps`,
    })
    .optional(),
});
export type BuildResult = z.infer<typeof BuildResult>;

export const BuildCancel = z.object({
  buildId: z.string().min(1).max(64),
  reason: cappedText(1000),
  /**
   * The builds stream's sequence of MajorDomo's last request for this build: a chef that has not
   * pulled that request yet answers it (and any earlier one of the build) cancelled when it
   * comes, and runs a request for the build sent after this cancel.
   */
  upTo: z.number().int().positive().optional(),
});
export type BuildCancel = z.infer<typeof BuildCancel>;
