// The runner's stage times (CP_TASK_STAGES_FILE, executors' task-stages.ts) summed up: where a
// task's time goes from its message to its end record, and which of it holds a lane.
import { readFileSync } from 'node:fs';
import type { Stage, StageLine } from '@computepods/executors';
import { percentile } from '../lib/report.js';

/** [figure key, what, from, to, holds a lane] */
const SPANS: ReadonlyArray<readonly [string, string, Stage, Stage, boolean]> = [
  ['admission', 'intake → admitted (profile, cwd checks)', 'intake', 'admitted', false],
  ['first_record', 'admitted → first record written (KV)', 'admitted', 'recorded', false],
  // A local task usually starts before its running record is stored (executors' local backend:
  // the runner showed no silence since it was queued), so the record is not on the lane's path.
  ['to_spawner', 'lane taken → request written to spawner', 'lane', 'sent', true],
  [
    'running_record',
    'lane taken → recorded running (KV; beside the spawn if early)',
    'lane',
    'running',
    false,
  ],
  ['pipe', 'written → spawner read it', 'sent', 'spawner-read', true],
  ['spawn', 'spawner: task folder + posix_spawn', 'spawner-read', 'spawned', true],
  ['task', "task's processes (sh wrapper, cc, compiler)", 'spawned', 'reaped', true],
  ['exit_back', 'reaped → end seen by the runner', 'reaped', 'exit', true],
  ['free', 'end seen → lane freed', 'exit', 'lane-free', true],
  ['lane', 'LANE HELD (lane taken → freed)', 'lane', 'lane-free', false],
  ['lane_ours', 'of which not the task (lane held − task)', 'lane', 'lane-free', false],
  ['end_prepare', 'lane freed → end prepared (empty outputs)', 'lane-free', 'end-prepared', false],
  ['end_record', 'end prepared → end recorded (KV)', 'end-prepared', 'end-recorded', false],
  // A task that found a lane free takes it at its first record, before that write returns: it
  // waited for none (0), where the plain difference would be negative.
  ['queued', 'first record → lane taken (queued; 0 if one was free)', 'recorded', 'lane', false],
];

/** The stage lines of the tasks whose end was recorded since `from` bytes into the file. */
export function readStages(file: string, from: number): { lines: StageLine[]; size: number } {
  const text = readFileSync(file, 'utf8');
  const lines = text
    .slice(from)
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as StageLine);
  return { lines, size: text.length };
}

/** Table rows (what, tasks, mean, p50, p90 ms, on a lane) and figures `<prefix>_<key>_{mean,p50}_ms`. */
export function stageSummary(lines: readonly StageLine[], prefix: string) {
  const rows: (string | number)[][] = [];
  const figures: Record<string, number> = {};
  for (const [key, what, from, to, lane] of SPANS) {
    const span = (l: StageLine, f: Stage, t: Stage) =>
      l[f] !== undefined && l[t] !== undefined ? l[t] - l[f] : undefined;
    const ms = lines
      .map((l) => {
        const v = span(l, from, to);
        if (key === 'queued' && v !== undefined) return Math.max(0, v);
        if (key !== 'lane_ours' || v === undefined) return v;
        const task = span(l, 'spawned', 'reaped');
        return task === undefined ? undefined : v - task;
      })
      .filter((v): v is number => v !== undefined)
      .sort((a, b) => a - b);
    if (ms.length === 0) continue;
    const mean = ms.reduce((a, b) => a + b, 0) / ms.length;
    const p50 = percentile(ms, 50);
    rows.push([what, ms.length, mean, p50, percentile(ms, 90), lane ? 'yes' : '']);
    figures[`${prefix}_${key}_mean_ms`] = mean;
    figures[`${prefix}_${key}_p50_ms`] = p50;
  }
  const cpu = lines.map((l) => l.cpuMs).filter((v): v is number => v !== undefined);
  if (cpu.length) {
    const mean = cpu.reduce((a, b) => a + b, 0) / cpu.length;
    rows.push(["task's processes: CPU (rusage)", cpu.length, mean, percentile(cpu, 50), '', '']);
    figures[`${prefix}_task_cpu_mean_ms`] = mean;
  }
  return { rows, figures };
}
