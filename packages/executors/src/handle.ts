import { z } from 'zod';

// A handle is read back from KV after a restart and its parts reach sbatch, scancel, tail and
// rm as arguments: a key that could read as an option, or a folder with a newline, is no handle.
const JobKey = z.string().regex(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,199}$/);
const JobDir = z
  .string()
  .min(2)
  .refine((d) => d.startsWith('/') && !/[\u0000-\u001f\u007f]/.test(d));

/**
 * `handle` as `schema` reads it, or undefined: none (a task not started yet), another kind, or
 * not valid. The kind is looked at first: a failed parse makes zod's error, and the runner asked
 * this of every task it was handed before it had a handle (pnpm bench cbuild's profile, #15).
 */
function handleOf<T extends z.ZodType>(
  schema: T,
  kind: string,
  handle: unknown,
): z.infer<T> | undefined {
  if (typeof handle !== 'object' || handle === null || (handle as { kind?: unknown }).kind !== kind)
    return undefined;
  const r = schema.safeParse(handle);
  return r.success ? r.data : undefined;
}

/** Where a local task lives on disk; its pid is in TaskRecord.pid and in `<dir>/pid`. */
export const LocalHandle = z.object({
  kind: z.literal('local'),
  dir: z.string().min(1),
  /** Epoch ms when the task was recorded running: its timeout counts from here. */
  startedAt: z.number(),
});
export type LocalHandle = z.infer<typeof LocalHandle>;

/** Where a task is inside a (batched) SLURM job. */
export const SlurmHandle = z.object({
  kind: z.literal('slurm'),
  /** Unique key of the job: its folder name and, as cp-<key>, its SLURM job name. */
  jobKey: JobKey,
  /** The job folder as the cluster sees it (shared filesystem or jobs_remote_dir). */
  dir: JobDir,
  /** The task's number inside the job: files <dir>/<index>.out, .err, .exit ... */
  index: z.number().int().nonnegative(),
  /** Epoch ms when the task was first seen running (timeouts count from here). */
  startedAt: z.number().optional(),
  /** Local copy of the job folder (slurm_ssh), where outputs are fetched to. */
  localDir: z.string().optional(),
});
export type SlurmHandle = z.infer<typeof SlurmHandle>;

export function localHandle(handle: unknown): LocalHandle | undefined {
  return handleOf(LocalHandle, 'local', handle);
}

export function slurmHandle(handle: unknown): SlurmHandle | undefined {
  return handleOf(SlurmHandle, 'slurm', handle);
}

/**
 * The handle of a record MajorDomo queued again after its runner stopped answering
 * (services/majordomo/src/runner-liveness.ts): not where the task is, but which runner the
 * attempt before was with, so the runner taking it can look for a start of it
 * (Backend.earlierStart).
 */
export const RequeuedHandle = z.object({
  kind: z.literal('requeued'),
  runner: z.string().min(1),
  /**
   * The $SRV ids of that runner's processes MajorDomo last heard (none: it heard none of them,
   * say after its own restart). A jobs folder's mark names the process that wrote it, so a mark
   * left by an earlier process of a runner id since reused elsewhere is told apart.
   */
  instances: z.array(z.string().min(1).max(100)).max(16).optional(),
});
export type RequeuedHandle = z.infer<typeof RequeuedHandle>;

export function requeuedHandle(handle: unknown): RequeuedHandle | undefined {
  return handleOf(RequeuedHandle, 'requeued', handle);
}

/** Where a task is on Kubernetes: its Job (one per task), found again by name after a restart. */
export const KubernetesHandle = z.object({
  kind: z.literal('kubernetes'),
  namespace: z.string().regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/),
  /** The Job's name, a DNS label chosen before the Job is created (kubernetes-names.ts). */
  jobName: z.string().regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/),
  /** Epoch ms when the task was first seen running (timeouts count from here). */
  startedAt: z.number().optional(),
  /** The local file the pod's log is followed into. */
  logPath: z.string().min(1),
});
export type KubernetesHandle = z.infer<typeof KubernetesHandle>;

export function kubernetesHandle(handle: unknown): KubernetesHandle | undefined {
  return handleOf(KubernetesHandle, 'kubernetes', handle);
}
