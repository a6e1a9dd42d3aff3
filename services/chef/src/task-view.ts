import { TaskRecord } from '@computepods/protocol';
import type { z } from 'zod';

/**
 * What a chef reads of a runner's task record (`cp_<p>_tasks`): its state, why it ended, whether
 * its processes may still run, where its stderr went and when it was last written; each validated as TaskRecord validates it.
 * The rest (the submitted task with its file lists, the history, the backend's handle) is the
 * runner's, MajorDomo's and the UI's, and goes unread here: a chef waits on every task it
 * submits, and decoding each whole record at each of its updates (queued, running, ended) was
 * the biggest part of its CPU per task after its messages (pnpm bench cbuild, issue #15).
 * The chef never writes a task record through it (a put would store only these fields).
 */
export const TaskView = TaskRecord.pick({
  state: true,
  reason: true,
  stopping: true,
  stderrPath: true,
  updated: true,
});
export type TaskView = z.infer<typeof TaskView>;
