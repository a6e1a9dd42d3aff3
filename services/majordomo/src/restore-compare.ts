import type { MajorDomo } from './majordomo.js';

/**
 * Everything a restore decides, in a form two MajorDomos can be compared by (the restore tests:
 * one restored from a snapshot or a warm standby against one restored from every record): the
 * graph's rules, hashes, traces and projections, its task and artefact states, the records (but
 * their update times) and the builds in flight.
 */
export function observeRestore(md: MajorDomo) {
  const { dm, artefacts } = md.inspect();
  const state = dm.exportState();
  const st = dm.status();
  const byKey = <T>(o: Readonly<Record<string, T>>) =>
    Object.fromEntries(Object.entries(o).sort(([a], [b]) => a.localeCompare(b)));
  const records = artefacts.all().map(({ updated: _, ...rest }) => rest);
  return {
    rules: [...state.rules].sort((a, b) => a.id.localeCompare(b.id)),
    hashes: byKey(state.artefacts),
    traces: byKey(state.traces),
    projections: byKey(state.projections ?? {}),
    dirty: [...st.dirty].sort(),
    blocked: [...st.blocked].sort(),
    failed: st.failed,
    nonConvergent: st.nonConvergent,
    states: Object.fromEntries(records.map((r) => [r.path, dm.artefactState(r.path)])),
    records,
    inFlight: md.queries
      .builds()
      .map((b) => `${b.taskId} ${b.buildId}`)
      .sort(),
  };
}
