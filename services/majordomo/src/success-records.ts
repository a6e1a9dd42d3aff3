import type { Logger, TypedKv } from '@computepods/bus';
import type { CompletedResult, DependencyManager } from '@computepods/depgraph';
import type { BuildResult, TaskTrace } from '@computepods/protocol';
import type { z } from 'zod';
import type { ArtefactManager } from './artefacts.js';
import type { InFlight } from './dispatcher.js';

/** Where a successful build's records go: MajorDomo's graph, buckets and log. */
export interface SuccessRecords {
  readonly dm: DependencyManager;
  /** Written with no parse (see MajorDomo's traces). */
  readonly traces: TypedKv<z.ZodType<TaskTrace>>;
  readonly artefacts: ArtefactManager;
  readonly logger: Logger;
}

/**
 * What a successful build changed, into the buckets: its trace, its inputs' holders, its outputs
 * (and a cycle that does not converge). Resolves once every write is stored; rejects with the
 * first failure once all have settled.
 */
export async function recordSuccess(
  { dm, traces, artefacts, logger }: SuccessRecords,
  f: InFlight,
  result: BuildResult,
  res: CompletedResult,
  cid: string,
): Promise<void> {
  const { task } = f;
  const round = task.cyclic ? dm.roundKey(task.id) : undefined;
  // One round trip, not one per record (5 or 6 for a pdflatex pass): the writes go out at once
  // (a record's writes stay in order: ArtefactManager), and all are awaited before the result is
  // acknowledged; the next pass is planned meanwhile (STORED in start()). The records in memory
  // change as each is issued, before this returns its promise.
  const writes: Promise<unknown>[] = [];
  writes.push(
    traces.put(task.id, {
      taskId: task.id,
      // As the graph recorded them: a projected input by its projection, when known.
      inputs: { ...(dm.trace(task.id)?.inputs ?? task.inputHashes) },
      outputs: { ...result.cutoff },
      discovered: result.discovered,
      buildId: result.buildId,
      time: new Date().toISOString(),
      ...(round ? { pass: task.pass, round } : {}),
    }),
  );
  for (const [path, sha256] of Object.entries(f.inputs)) {
    if (task.outputs.includes(path)) continue;
    // The chef ran with every input at its planned hash on its pod (fetched if need be).
    writes.push(artefacts.heldBy(path, sha256, result.pod, cid));
    // Projections of inputs as read (a source's, which no watcher computes): kept with the
    // artefact while it has those bytes, so a restart knows them too. The record in memory
    // has the holder already; the write goes after the holder's (one path's stay in order).
    const byKey = Object.hasOwn(result.inputProjections, path)
      ? result.inputProjections[path]
      : undefined;
    const rec = artefacts.get(path);
    if (!byKey || !rec || rec.sha256 !== sha256) continue;
    writes.push(
      artefacts.update(
        path,
        { status: rec.status, projections: { ...rec.projections, ...byKey } },
        cid,
      ),
    );
  }
  for (const [path, out] of Object.entries(result.outputs)) {
    writes.push(
      artefacts.update(
        path,
        {
          status: 'up_to_date',
          sha256: out.sha256,
          cutoff: result.cutoff[path] ?? out.sha256,
          projections: result.projections[path],
          size: out.size,
          producer: task.id,
          pods: artefacts.podsWith(path, out.sha256, result.pod),
          buildId: result.buildId,
          written: out.mtimeNs ? { pod: result.pod, mtimeNs: out.mtimeNs } : undefined,
        },
        cid,
      ),
    );
  }
  // Issued with the rest, after the outputs' (the same path's writes stay in order): a
  // component that does not converge is recorded so as the result is.
  for (const nc of res.nonConvergent) {
    logger.warn(
      { component: nc.component, artefacts: nc.artefacts, passes: nc.passes, cid },
      'cycle does not converge',
    );
    for (const path of nc.artefacts)
      writes.push(
        artefacts.update(
          path,
          {
            status: 'not_converging',
            error: `still changing after ${nc.passes} passes`,
            passes: nc.passes,
          },
          cid,
        ),
      );
  }
  // Every write settles before a failure is thrown: none is still in flight when the result
  // is planned again (MajorDomo's #applyResult) and its records written anew.
  const failed = (await Promise.allSettled(writes)).find((r) => r.status === 'rejected');
  if (failed) throw failed.reason;
  // Per task, so debug (the artefact events and records say the same, and cpctrl shows them).
  logger.debug(
    {
      taskId: task.id,
      buildId: result.buildId,
      changed: res.changed,
      cutoff: res.cutoff,
      durationMs: result.durationMs,
      cid,
    },
    res.cutoff.length && !res.changed.length ? 'built; outputs unchanged (early cutoff)' : 'built',
  );
}
