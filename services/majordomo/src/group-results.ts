import type { BuildResult } from '@computepods/protocol';
import type { InFlight } from './dispatcher.js';

/**
 * A group build's successful result as each of its steps' own (BuildRequested.group): the
 * step's outputs, their cutoff digests and projections, and what its run revealed
 * (BuildResult.steps); everything else, the build id (whose task ran it, for its log) among it,
 * is the group's. A string says why it cannot be split (a step's output or its discoveries
 * missing: a chef that does not know groups built the first step alone), and the group's steps
 * are then built again one by one.
 */
export function stepResults(
  group: readonly InFlight[],
  result: BuildResult,
): Map<InFlight, BuildResult> | string {
  const out = new Map<InFlight, BuildResult>();
  for (const f of group) {
    const discovered =
      result.steps && Object.hasOwn(result.steps, f.task.id) ? result.steps[f.task.id] : undefined;
    if (!discovered)
      return `the group's result does not say what step ${f.task.id} discovered (its chef may not build groups)`;
    const outputs: BuildResult['outputs'] = {};
    const cutoff: BuildResult['cutoff'] = {};
    const projections: BuildResult['projections'] = {};
    for (const path of f.task.outputs) {
      const o = Object.hasOwn(result.outputs, path) ? result.outputs[path] : undefined;
      if (!o) return `the group's result has no output ${path} of step ${f.task.id}`;
      outputs[path] = o;
      cutoff[path] = Object.hasOwn(result.cutoff, path)
        ? (result.cutoff[path] as string)
        : o.sha256;
      const p = Object.hasOwn(result.projections, path) ? result.projections[path] : undefined;
      if (p) projections[path] = p;
    }
    const { steps: _steps, ...rest } = result;
    out.set(f, {
      ...rest,
      taskId: f.task.id,
      outputs,
      cutoff,
      projections,
      inputProjections: {},
      discovered,
    });
  }
  return out;
}
