import { createHash } from 'node:crypto';
import type { DependencyManager } from './dependency-manager.js';
import type { CompletedResult, TaskInstance } from './types.js';

/** What a simulated build returns: output hashes, or a failure. */
export type BuildOutcome =
  | { readonly outputs: Record<string, string>; readonly discovered?: string[] }
  | { readonly fail: string };

export interface RunRecord {
  readonly task: TaskInstance;
  readonly result: CompletedResult | undefined;
}

export const sha = (text: string) => createHash('sha256').update(text).digest('hex');

/**
 * Drives the manager like MajorDomo would, until nothing is ready or running: take up to
 * `concurrency` tasks, then complete the oldest running one. Throws after `maxRuns` runs, so a
 * scheduler that loops fails the test instead of hanging it.
 */
export function drive(
  dm: DependencyManager,
  build: (task: TaskInstance) => BuildOutcome,
  options: { concurrency?: number; maxRuns?: number } = {},
): RunRecord[] {
  const concurrency = options.concurrency ?? 4;
  const maxRuns = options.maxRuns ?? 10_000;
  const log: RunRecord[] = [];
  const inFlight: TaskInstance[] = [];
  for (;;) {
    inFlight.push(...dm.take(concurrency));
    const task = inFlight.shift();
    if (!task) return log;
    if (log.length >= maxRuns)
      throw new Error(`more than ${maxRuns} runs: the build does not stop`);
    const outcome = build(task);
    if ('fail' in outcome) {
      dm.failed(task.id, outcome.fail, task.run);
      log.push({ task, result: undefined });
    } else {
      const result = dm.completed(task.id, { ...outcome, run: task.run });
      log.push({ task, result });
      // Runs cancelled by this completion are dropped, as MajorDomo would.
      for (const id of result.cancel) {
        const i = inFlight.findIndex((t) => t.id === id);
        if (i >= 0) inFlight.splice(i, 1);
      }
    }
  }
}
