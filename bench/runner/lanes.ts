// Where a lane's time goes in the runner bench's warm batch (CP_BENCH_STAGES=FILE: the runner's
// stage times, executors' task-stages.ts): from one task's end in the spawner (reaped) to the
// next task's posix_spawn on the lane it freed, stage by stage, against the task itself.
import type { StageLine } from '@computepods/executors';
import { stageSummary } from '../cbuild/stages.js';
import { percentile } from '../lib/report.js';

/**
 * The lane gaps: each spawn takes the lane of the earliest end not yet followed by a spawn (a
 * task starts only once a lane is free), so a gap is one lane's idle time between two tasks:
 * reaped → end seen → request to the spawner (the next task's running record written beside it
 * when it started early) → its posix_spawn.
 */
export function laneGaps(lines: readonly StageLine[]): number[] {
  const moments: [number, 'free' | 'taken'][] = [];
  for (const l of lines) {
    if (l.reaped !== undefined) moments.push([l.reaped, 'free']);
    if (l.spawned !== undefined) moments.push([l.spawned, 'taken']);
  }
  moments.sort((a, b) => a[0] - b[0]);
  const free: number[] = [];
  const gaps: number[] = [];
  let head = 0;
  for (const [at, kind] of moments) {
    if (kind === 'free') free.push(at);
    else if (head < free.length) gaps.push(at - (free[head++] as number));
  }
  return gaps.sort((a, b) => a - b);
}

/** Table rows and figures `warm_lane_*` / `warm_stage_*` of the warm batch's stage lines. */
export function laneSummary(lines: readonly StageLine[]) {
  const { rows, figures } = stageSummary(lines, 'warm_stage');
  const gaps = laneGaps(lines);
  if (gaps.length) {
    const mean = gaps.reduce((a, b) => a + b, 0) / gaps.length;
    const p50 = percentile(gaps, 50);
    rows.push([
      "LANE IDLE: a task's end (reaped) → next posix_spawn on its lane",
      gaps.length,
      mean,
      p50,
      percentile(gaps, 90),
      '',
    ]);
    figures.warm_lane_idle_mean_ms = mean;
    figures.warm_lane_idle_p50_ms = p50;
  }
  return { rows, figures };
}
