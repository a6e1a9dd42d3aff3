// One sbatch per task, for pnpm bench runner: the peer the batched SLURM path is compared with.
// Measured for the whole count by default (CP_BENCH_SLURM_SINGLE = the batched count). Every run
// also pays fixed costs no task count changes (the executor's batch window, the first and last
// squeue poll, SLURM's first scheduling pass), so a 1-task run measures them on their own, and
// a smaller measured count is extrapolated as fixed + per task × count, never by scaling the
// fixed costs with it; the naive scaling (the figure this bench reported before) stays, labelled.

export interface SlurmRun {
  wall: number;
  stats: Readonly<Record<string, number>>;
}

export interface OneSbatchPerTask {
  /** Wall time of one sbatch per task for `total` tasks: measured, or extrapolated (fixed + per task). */
  wallForTotal: number;
  measuredWholeCount: boolean;
  rows: Array<Array<string | number>>;
  figures: Record<string, number | boolean>;
}

/**
 * Runs one task alone (the fixed costs), then `measured` tasks one job each; `run(n, tag)`
 * submits n no-op tasks through the executor with one-task jobs and waits for all of them.
 */
export async function oneSbatchPerTask(opts: {
  total: number;
  measured: number;
  run: (n: number, tag: string) => Promise<SlurmRun>;
}): Promise<OneSbatchPerTask> {
  const { total, run } = opts;
  const measured = Math.min(opts.measured, total);
  if (!Number.isInteger(measured) || measured < 2) {
    throw new RangeError(`CP_BENCH_SLURM_SINGLE must be an integer ≥ 2, got ${opts.measured}`);
  }
  const one = await run(1, 'single-1');
  const many = await run(measured, 'single');
  const perTask = (many.wall - one.wall) / (measured - 1);
  // The wall time one task alone takes is the fixed cost plus one task's share.
  const fixed = one.wall - perTask;
  const whole = measured === total;
  const fitted = one.wall + perTask * (total - 1);
  const naive = (many.wall * total) / measured;
  const wallForTotal = whole ? many.wall : fitted;
  const calls = (r: SlurmRun) => [r.stats.sbatch ?? 0, r.stats.squeue ?? 0, r.stats.scontrol ?? 0];
  const rows: Array<Array<string | number>> = [
    ['one sbatch per task, 1 task (fixed costs)', 1, one.wall, ...calls(one)],
    [
      `one sbatch per task (measured${whole ? ', whole count' : ''})`,
      measured,
      many.wall,
      ...calls(many),
    ],
  ];
  if (!whole) {
    rows.push(
      [
        `  extrapolated: 1-task wall + ${perTask.toFixed(3)} s × ${total - 1}`,
        total,
        fitted,
        total,
        '-',
        '-',
      ],
      [
        `  old, naive: measured × ${total / measured} (fixed costs scaled too)`,
        total,
        naive,
        total,
        '-',
        '-',
      ],
    );
  }
  return {
    wallForTotal,
    measuredWholeCount: whole,
    rows,
    figures: {
      slurm_single_one_task_wall_s: one.wall,
      slurm_single_fixed_s: fixed,
      slurm_single_per_task_s: perTask,
      slurm_single_measured_tasks: measured,
      slurm_single_wall_s: many.wall,
      slurm_single_sbatch_calls: many.stats.sbatch ?? 0,
      slurm_single_squeue_calls: many.stats.squeue ?? 0,
      slurm_single_scontrol_calls: many.stats.scontrol ?? 0,
      slurm_single_measured_whole_count: whole,
      slurm_single_wall_for_total_s: wallForTotal,
      slurm_single_fitted_wall_for_total_s: fitted,
      slurm_single_naive_extrapolated_wall_s: naive,
    },
  };
}
