import { GraphInvariantError } from './checked.js';
import type { Graph } from './graph.js';
import type { Task } from './task.js';
import { traceInput } from './trace.js';

export type DirtyReason =
  | { readonly kind: 'never' }
  | { readonly kind: 'input'; readonly path: number; readonly was: string | undefined }
  | { readonly kind: 'output'; readonly path: number; readonly was: string };

/** Why the task's verifying trace no longer matches, or undefined when it does. */
export function dirtyReason(g: Graph, t: Task): DirtyReason | undefined {
  const trace = g.traces.get(t.id);
  if (!trace) return { kind: 'never' };
  for (const p of t.inputs) {
    const was = traceInput(trace, p);
    if (g.compareHash(t, p) !== was) return { kind: 'input', path: p, was };
  }
  for (let i = 0; i < trace.outIds.length; i++) {
    const o = trace.outIds[i];
    const was = trace.outHashes[i];
    if (o === undefined || was === undefined) throw new GraphInvariantError('trace output', i);
    if (g.hash[o] !== was) return { kind: 'output', path: o, was };
  }
  return undefined;
}
