import type { Logger, Versioned } from '@computepods/bus';
import type { DependencyManager } from '@computepods/depgraph';
import type { ArtefactRecord, TaskTrace } from '@computepods/protocol';
import type { ArtefactManager } from './artefacts.js';
import type { PassMark } from './snapshot-store.js';

/** The hash the graph compares for a record, or undefined when the graph does not hold it. */
export function graphHash(rec: ArtefactRecord | undefined): string | undefined {
  if (!rec?.sha256 || rec.auxiliary) return undefined;
  return rec.cutoff ?? rec.sha256;
}

/** The record in the graph, as a full restore puts it there (call inside dm.batch). */
export function restoreArtefact(dm: DependencyManager, rec: ArtefactRecord): void {
  const hash = graphHash(rec);
  if (!hash) return;
  dm.setArtefact(rec.path, hash);
  if (rec.projections) dm.setProjections(rec.path, hash, rec.projections);
}

/**
 * The artefact records written after a snapshot, taken into the records and the graph loaded
 * from it (inside dm.batch), so both stand as a full restore from the bucket would leave them.
 * Returns how many keys changed.
 */
export function applyArtefactTail(
  dm: DependencyManager,
  artefacts: ArtefactManager,
  changes: ReadonlyMap<string, Versioned<ArtefactRecord> | undefined>,
): number {
  for (const [path, v] of changes) {
    const prev = artefacts.stored(path, v?.value);
    const now = artefacts.get(path);
    const was = graphHash(prev);
    const hash = graphHash(now);
    if (!now || !hash) {
      if (was) dm.deleteArtefact(path);
      continue;
    }
    if (was === hash && sameProjections(prev?.projections, now.projections)) continue;
    // Same bytes, other projections: the graph only adds projections to a hash it has, so the
    // hash goes and comes back to forget the old ones.
    if (was === hash) dm.deleteArtefact(path);
    restoreArtefact(dm, now);
  }
  return changes.size;
}

/** The traces written after a snapshot, into the graph (inside dm.batch) and the cycles' passes. */
export function applyTraceTail(
  dm: DependencyManager,
  passes: Map<string, PassMark>,
  changes: ReadonlyMap<string, Versioned<TaskTrace> | undefined>,
  logger: Logger,
): number {
  for (const [taskId, v] of changes) {
    passes.delete(taskId);
    if (!v) {
      dm.forget(taskId);
      continue;
    }
    // As the full restore: a trace that cannot be restored is skipped, its task rebuilt (and
    // the snapshot's older trace of it must not stay).
    if (!restoreTrace(dm, taskId, v.value, logger)) dm.forget(taskId);
    const mark = passOf(taskId, v.value);
    if (mark) passes.set(taskId, mark);
  }
  return changes.size;
}

/** One stored trace into the graph; false (logged) when it cannot be restored. */
export function restoreTrace(
  dm: DependencyManager,
  taskId: string,
  value: TaskTrace,
  logger: Logger,
): boolean {
  try {
    dm.restoreTrace(taskId, {
      inputs: value.inputs,
      outputs: value.outputs,
      discovered: value.discovered,
    });
    return true;
  } catch (err) {
    // One bad record must not stop every restart: the task is rebuilt instead.
    logger.error(
      { taskId, code: (err as { code?: string }).code, err: (err as Error).message },
      'trace not restored (skipped; the task will be rebuilt)',
    );
    return false;
  }
}

/** Where a cycle's task was in its fixpoint when its trace was written, if it is in one. */
export function passOf(taskId: string, value: TaskTrace): PassMark | undefined {
  return value.pass && value.round ? { taskId, pass: value.pass, round: value.round } : undefined;
}

function sameProjections(
  a: Readonly<Record<string, string>> | undefined,
  b: Readonly<Record<string, string>> | undefined,
): boolean {
  const ka = Object.keys(a ?? {});
  if (ka.length !== Object.keys(b ?? {}).length) return false;
  return ka.every((k) => a?.[k] === b?.[k]);
}
