/**
 * Verifying trace of a task's last successful run, by path id. Parallel arrays rather than Maps:
 * traces are the bulk of the graph's memory (one entry per input edge) and are read by a short
 * linear scan.
 */
export interface Trace {
  readonly inIds: Int32Array;
  readonly inHashes: readonly string[];
  readonly outIds: Int32Array;
  readonly outHashes: readonly string[];
  /** Undefined until the task exists: then every undeclared input is taken as discovered. */
  discovered: number[] | undefined;
}

/** Hash the run read for path `p`, or undefined when it did not exist then. */
export function traceInput(trace: Trace, p: number): string | undefined {
  const i = trace.inIds.indexOf(p);
  return i < 0 ? undefined : trace.inHashes[i];
}

export function newTrace(
  inputs: Iterable<readonly [number, string]>,
  outputs: Iterable<readonly [number, string]>,
  discovered: number[] | undefined,
): Trace {
  const ins = [...inputs];
  const outs = [...outputs];
  return {
    inIds: Int32Array.from(ins, ([p]) => p),
    inHashes: ins.map(([, h]) => h),
    outIds: Int32Array.from(outs, ([p]) => p),
    outHashes: outs.map(([, h]) => h),
    discovered,
  };
}
