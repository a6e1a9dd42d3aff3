import { z } from 'zod';
import { Sha256 } from './files.js';

export const ArtefactStatus = z.enum([
  'source',
  'missing',
  'stale',
  'queued',
  'building',
  'up_to_date',
  'failed',
  /** Its build was cancelled on request: not built again until an input changes or a rebuild. */
  'cancelled',
  'not_converging',
]);
export type ArtefactStatus = z.infer<typeof ArtefactStatus>;

/** MajorDomo's KV record for one artefact (key: kvKey(path)). */
export const ArtefactRecord = z.object({
  path: z.string(),
  status: ArtefactStatus,
  sha256: Sha256.nullable(),
  /** The hash compared for early cutoff (ignore patterns applied); equals sha256 when none. */
  cutoff: Sha256.optional(),
  /** Projected hashes of these bytes (projection key → hash), as their build reported them. */
  projections: z.record(z.string().regex(/^[0-9a-f]{16}$/), Sha256).optional(),
  size: z.number().int().nonnegative().nullable(),
  /** Producing task (`rule:stem`); absent for sources. */
  producer: z.string().optional(),
  /** A file the producer writes besides its outputs (.log, .blg ...): not in the graph. */
  auxiliary: z.boolean().optional(),
  /** Pods known to hold this hash. */
  pods: z.array(z.string()).default([]),
  updated: z.iso.datetime(),
  buildId: z.string().optional(),
  error: z.string().optional(),
  /**
   * Set while not_converging on an artefact still changing in its cycle's last pass: the passes
   * run. A restarted MajorDomo restores the verdict from it instead of running the cycle again.
   */
  passes: z.number().int().min(1).optional(),
  /**
   * Set while cancelled: the key (rule, task, input hashes) of the build cancelled on request. A
   * restarted MajorDomo holds the task again only while its inputs still give this key.
   */
  held: z
    .string()
    .regex(/^[0-9a-f]{32}$/)
    .optional(),
  /**
   * Where and when (the file's mtime, ns) the build that made these bytes wrote them. A file
   * event from that pod with an older mtime arrived late (the watcher and the results travel on
   * different streams): it reports an earlier build's bytes, not an edit.
   */
  written: z.object({ pod: z.string(), mtimeNs: z.string().regex(/^\d+$/) }).optional(),
  /**
   * The files stream's sequence of the watcher's batch this state came from (the last one that
   * changed it): a batch delivered again after it, its ack lost, is older news and ignored.
   */
  fileSeq: z.number().int().positive().optional(),
});
export type ArtefactRecord = z.infer<typeof ArtefactRecord>;

/**
 * MajorDomo's announcement of artefact records (the artefact-state subject): every record that
 * changed in one turn of its event loop, in the order they changed (a path may appear more than
 * once: each of its changes, in order). One message a turn instead of one a change: a compile's
 * outputs (`.o`, `.d`) go missing, queued and up to date together, 6 messages a compile to every
 * follower before (pnpm bench cbuild).
 */
export const ArtefactStates = z.object({ records: z.array(ArtefactRecord).min(1) });
export type ArtefactStates = z.infer<typeof ArtefactStates>;

/** A file hash or cutoff digest as a trace keeps it. */
const TraceHash = z.string().min(1).max(128);

/** What MajorDomo remembers of a task's last successful run (a constructive trace). */
export const TaskTrace = z.object({
  taskId: z.string(),
  // An empty hash would make the restored graph throw (restoreTrace): a record carrying one
  // fails validation and is skipped.
  inputs: z.record(z.string(), TraceHash),
  outputs: z.record(z.string(), TraceHash),
  /** Dependencies the build discovered (an \\input{}, a header from a depfile). */
  discovered: z.array(z.string()).default([]),
  buildId: z.string(),
  time: z.iso.datetime(),
  /**
   * A task in a cycle: the pass it ran in and its round (DependencyManager.roundKey), so a
   * restarted MajorDomo goes on with that pass instead of starting the fixpoint again.
   */
  pass: z.number().int().min(1).optional(),
  round: z.string().min(1).max(64).optional(),
});
export type TaskTrace = z.infer<typeof TaskTrace>;
