/**
 * Verifying trace of a task's last successful run, by path id. Parallel arrays rather than Maps:
 * traces are the bulk of the graph's memory (one entry per input edge) and are read by a short
 * linear scan. Plain arrays of exact length: a trace holds a handful of entries, and a small typed
 * array costs twice the bytes of a small array (its buffer object and header).
 */
export interface Trace {
  readonly inIds: readonly number[];
  readonly inHashes: readonly string[];
  readonly outIds: readonly number[];
  readonly outHashes: readonly string[];
  /** Undefined until the task exists: then every undeclared input is taken as discovered. */
  discovered: readonly number[] | undefined;
}

/** Hash the run read for path `p`, or undefined when it did not exist then. */
export function traceInput(trace: Trace, p: number): string | undefined {
  const i = trace.inIds.indexOf(p);
  return i < 0 ? undefined : trace.inHashes[i];
}

export function newTrace(
  inputs: Iterable<readonly [number, string]>,
  outputs: Iterable<readonly [number, string]>,
  discovered: readonly number[] | undefined,
): Trace {
  const ins = [...inputs];
  const outs = [...outputs];
  return {
    inIds: ins.map(([p]) => p),
    inHashes: ins.map(([, h]) => h),
    outIds: outs.map(([p]) => p),
    outHashes: outs.map(([, h]) => h),
    discovered,
  };
}
