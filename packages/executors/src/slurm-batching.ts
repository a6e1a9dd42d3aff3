import { type BatchingConfig, CpError, slurmMemToMb } from '@computepods/protocol';

export interface TaskNeeds {
  readonly cpusPerTask: number;
  /** Megabytes per task; undefined when the configuration asks for no memory. */
  readonly memPerTaskMb: number | undefined;
}

export interface BatchPlan {
  /** Tasks packed into one SLURM job. */
  readonly tasksPerJob: number;
  /** Of those, how many run at once inside the job (the rest wait their turn there). */
  readonly parallelTasksPerJob: number;
}

/** A task needs more than one job may have: it cannot be batched (or submitted) at all. */
export class BatchingError extends CpError {
  constructor(message: string) {
    super('CP_BATCHING', `${message}; raise batching_config's max_* or lower the task's needs`);
  }
}

function fit(needs: TaskNeeds, cpus: number, memMb: number): number {
  const byCpu = Math.floor(cpus / needs.cpusPerTask);
  const byMem = needs.memPerTaskMb === undefined ? byCpu : Math.floor(memMb / needs.memPerTaskMb);
  return Math.max(1, Math.min(byCpu, byMem));
}

/**
 * Fractal's batching heuristic: fill jobs up to the target CPUs and memory if that gives at
 * most target_num_jobs jobs; else up to the maximum CPUs and memory if that gives at most
 * max_num_jobs; else exactly max_num_jobs jobs, each running its share in turns
 * (parallelTasksPerJob at a time).
 */
export function planBatches(total: number, needs: TaskNeeds, cfg: BatchingConfig): BatchPlan {
  const maxMem = slurmMemToMb(cfg.max_mem_per_job);
  const targetMem = slurmMemToMb(cfg.target_mem_per_job);
  if (needs.cpusPerTask > cfg.max_cpus_per_job)
    throw new BatchingError(
      `a task needs ${needs.cpusPerTask} CPUs but max_cpus_per_job is ${cfg.max_cpus_per_job}`,
    );
  if (needs.memPerTaskMb !== undefined && needs.memPerTaskMb > maxMem)
    throw new BatchingError(
      `a task needs ${needs.memPerTaskMb} MB but max_mem_per_job is ${maxMem} MB`,
    );
  if (total <= 0) return { tasksPerJob: 1, parallelTasksPerJob: 1 };
  const atTarget = fit(needs, cfg.target_cpus_per_job, targetMem);
  if (Math.ceil(total / atTarget) <= cfg.target_num_jobs)
    return { tasksPerJob: atTarget, parallelTasksPerJob: atTarget };
  const atMax = fit(needs, cfg.max_cpus_per_job, maxMem);
  if (Math.ceil(total / atMax) <= cfg.max_num_jobs)
    return { tasksPerJob: atMax, parallelTasksPerJob: atMax };
  return { tasksPerJob: Math.ceil(total / cfg.max_num_jobs), parallelTasksPerJob: atMax };
}

/** Splits items into jobs of at most `size`. */
export function chunk<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}
