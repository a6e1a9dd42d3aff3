import { posix } from 'node:path';
import type { TaskRecord, TaskSubmitted } from '@computepods/protocol';
import { outputTarget, TaskFileError } from './slurm-files.js';
import type { SlurmHost } from './slurm-host.js';

/**
 * How a local backend moves a task's declared files when the machine it runs on cannot see
 * the task's cwd (a pilot worker on a cluster without the pods' filesystem): someone who can
 * (the runner that started the pilot) copies the inputs into a work folder the task then runs
 * in, and brings the outputs back from it before the task is recorded finished.
 */
export interface TaskStaging {
  /** Copies the task's declared inputs; resolves with the folder the command runs in. */
  stageIn(rec: TaskRecord): Promise<string>;
  /**
   * Brings the declared outputs (and auxiliaries) of a task that exited 0 back into its cwd,
   * verified; resolves with why the task fails (an output not written), or undefined.
   */
  stageOut(rec: TaskRecord): Promise<string | undefined>;
  /** Brings back the auxiliaries of a task that exited non-zero: a failed run's .log says why. */
  stageFailed(rec: TaskRecord): Promise<void>;
}

/**
 * Copies a task's declared outputs from its work folder on the cluster into its cwd (each
 * verified, replacing the file atomically). Resolves with why the task fails when one was not
 * written; throws what the transport throws, and TaskFileError for an output whose place in
 * cwd is refused. Auxiliaries follow (see fetchAuxiliaries).
 */
export async function fetchOutputs(
  host: Pick<SlurmHost, 'fetchFile'>,
  task: TaskSubmitted,
  work: string,
  warn: (msg: string, data: Record<string, unknown>) => void,
): Promise<string | undefined> {
  for (const out of task.files?.outputs ?? []) {
    const local = await outputTarget(task.cwd, out);
    if (!(await host.fetchFile(posix.join(work, out), local)))
      return `declared output ${out} was not written by the command (no regular file ${out} in ${work})`;
  }
  await fetchAuxiliaries(host, task, work, warn);
  return undefined;
}

/**
 * Brings back the auxiliaries (.log, .blg) the command wrote, after a success and after a
 * failure alike (a failed run's .log says why). One not written is not looked for further;
 * one whose place in cwd is refused (a symlink there) is left behind, said, and fails nothing.
 * A transport failure throws.
 */
export async function fetchAuxiliaries(
  host: Pick<SlurmHost, 'fetchFile'>,
  task: TaskSubmitted,
  work: string,
  warn: (msg: string, data: Record<string, unknown>) => void,
): Promise<void> {
  for (const aux of task.files?.auxiliaries ?? []) {
    try {
      const local = await outputTarget(task.cwd, aux, 'files.auxiliaries');
      await host.fetchFile(posix.join(work, aux), local);
    } catch (err) {
      if (!(err instanceof TaskFileError)) throw err;
      warn('auxiliary file left in the job folder', { taskId: task.taskId, err: err.message });
    }
  }
}
