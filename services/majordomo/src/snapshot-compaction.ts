import type { Bus, TypedKv } from '@computepods/bus';
import type { ArtefactRecord, RulesDeclared, TaskTrace } from '@computepods/protocol';
import type { MajorDomoConfig } from './config.js';
import type { GoalRules } from './goals.js';
import { fromSnapshot, plannedWith, takeSnapshot } from './restore-state.js';
import type { SnapshotHead, SnapshotStore } from './snapshot-store.js';

export interface CompactionInputs {
  readonly bus: Bus;
  readonly cfg: MajorDomoConfig;
  readonly artefacts: TypedKv<typeof ArtefactRecord>;
  readonly traces: TypedKv<typeof TaskTrace>;
  readonly rules: TypedKv<typeof RulesDeclared>;
  readonly goals: GoalRules;
  readonly snapshots: SnapshotStore;
  /** Compacted only while this holds (MajorDomo idle): it takes the event loop for a while. */
  readonly quiet: () => boolean;
}

/**
 * Keeps the stored snapshot near the buckets while MajorDomo runs, so a restart's tail stays
 * short: every `cfg.snapshotEveryMs`, when the artefacts and traces buckets took more than
 * `cfg.snapshotTail` writes since the snapshot, a new one is made as a restart would make its
 * graph (the stored snapshot and the keys written since, in a graph of its own) and stored.
 * Not from the live graph: it holds what no bucket says (a trace forgotten for a retry, a run in
 * flight), and a snapshot must stand for the buckets (restore-snapshot.test.ts).
 */
export function compactSnapshots(inputs: CompactionInputs): () => Promise<void> {
  const { bus, cfg } = inputs;
  /** The compaction running, if one is. */
  let running: Promise<void> | undefined;
  const timer = setInterval(() => {
    if (running || !inputs.quiet()) return;
    running = compactOnce(inputs)
      .then((head) => {
        if (head)
          bus.logger.info(
            { bytes: head.bytes, parts: head.parts, artefacts: head.artefactCount },
            'graph snapshot taken again (compacted)',
          );
      })
      .catch((err: Error) => bus.logger.warn({ err: err.message }, 'graph snapshot not compacted'))
      .finally(() => {
        running = undefined;
      });
  }, cfg.snapshotEveryMs);
  timer.unref();
  // Stopped: no new compaction, and the one running finishes (its head and local copy both
  // written, so a start right after reads the copy of the head it finds).
  return async () => {
    clearInterval(timer);
    await running;
  };
}

/** One compaction, when the buckets moved far enough past the snapshot: the new head. */
export async function compactOnce(inputs: CompactionInputs): Promise<SnapshotHead | undefined> {
  const { bus, cfg, snapshots } = inputs;
  const head = await snapshots.current();
  // None yet, or one a restart will not use: the next restart stores one.
  if (!head) return undefined;
  const [a, t] = await Promise.all([inputs.artefacts.kv.status(), inputs.traces.kv.status()]);
  const writes =
    a.streamInfo.state.last_seq -
    head.artefacts.revision +
    (t.streamInfo.state.last_seq - head.traces.revision);
  if (writes < cfg.snapshotTail) return undefined;
  const [loaded, declarations, answers] = await Promise.all([
    snapshots.load(),
    inputs.rules.entries(),
    inputs.goals.load(),
  ]);
  const planned = plannedWith(declarations, answers);
  const state = await fromSnapshot(bus, cfg, inputs.traces, loaded, planned, 'compaction');
  if (!state) return undefined;
  state.dm.batch(() => state.fill());
  // Planned as the stored one was (a restart applies the rules declared now to it).
  const as = { ...planned, declarations: state.planned ?? planned.declarations };
  const taken = takeSnapshot(state.dm, state.artefacts, state.passes, as, cfg.passLimit);
  return snapshots.save(taken.meta, taken.graph, state.marks);
}
