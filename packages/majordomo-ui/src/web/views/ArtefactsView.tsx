import { useMemo } from 'react';
import { useSnapshot } from '../context.js';
import { href, type Route } from '../route.js';
import { reasonOf, STATE_LABEL, shownState } from '../store.js';
import type { ArtefactStatus } from '../types.js';
import { ArtefactPanel } from './ArtefactPanel.js';
import { ParamSelect, PathSearch, StateSelect } from './ParamControls.js';

type Column = 'path' | 'state' | 'rule' | 'pods' | 'updated';
const COLUMNS: Array<[Column, string]> = [
  ['path', 'Path'],
  ['state', 'State'],
  ['rule', 'Rule'],
  ['pods', 'Pods'],
  ['updated', 'Updated'],
];

export function ArtefactsView({ route }: { route: Route }) {
  const snap = useSnapshot();
  const p = route.params;
  const state = p.get('state') ?? '';
  const pod = p.get('pod') ?? '';
  const rule = p.get('rule') ?? '';
  const q = p.get('q') ?? '';
  const sort = (p.get('sort') ?? 'path') as Column;
  const desc = p.get('desc') === '1';
  const selected = p.get('sel') ?? '';

  const rows = useMemo(() => {
    const paths = new Set([...snap.records.keys(), ...snap.graphStates.keys()]);
    return [...paths].map((path) => {
      const rec = snap.records.get(path);
      const producer = rec?.producer;
      return {
        path,
        state: shownState(snap, path) as ArtefactStatus,
        rule: producer ? producer.replace(/:.*/s, '') : '',
        producer: producer ?? '',
        pods: rec?.pods ?? [],
        updated: rec?.updated ?? '',
        reason: reasonOf(snap, path),
      };
    });
  }, [snap]);
  const pods = [...new Set(rows.flatMap((r) => r.pods))].sort();
  const rules = [...new Set(rows.map((r) => r.rule).filter(Boolean))].sort();
  const shown = rows
    .filter(
      (r) =>
        (!state || r.state === state) &&
        (!pod || r.pods.includes(pod)) &&
        (!rule || r.rule === rule) &&
        (!q || r.path.toLowerCase().includes(q.toLowerCase())),
    )
    .sort((a, b) => {
      const x = sort === 'pods' ? a.pods.join() : a[sort];
      const y = sort === 'pods' ? b.pods.join() : b[sort];
      return (x < y ? -1 : x > y ? 1 : 0) * (desc ? -1 : 1);
    });
  const params = Object.fromEntries(p);
  const counts = new Map<string, number>();
  for (const r of rows) counts.set(r.state, (counts.get(r.state) ?? 0) + 1);

  return (
    <div className="with-panel">
      <section className="artefacts-view" aria-label="artefacts">
        <div className="toolbar">
          <nav aria-label="quick filters" className="quick">
            {(['failed', 'building', 'stale', 'cancelled', 'not_converging'] as const).map((s) => (
              <a
                key={s}
                href={href('artefacts', { ...params, state: state === s ? '' : s })}
                className={`chip s-${s}${state === s ? ' on' : ''}`}
                aria-current={state === s ? 'true' : undefined}
              >
                {STATE_LABEL[s]} ({counts.get(s) ?? 0})
              </a>
            ))}
          </nav>
          <StateSelect route={route} value={state} />
          <ParamSelect route={route} param="pod" label="Pod" value={pod} options={pods} />
          <ParamSelect route={route} param="rule" label="Rule" value={rule} options={rules} />
          <PathSearch route={route} value={q} />
          <span className="muted">
            {shown.length} of {rows.length}
          </span>
        </div>
        <table className="grid">
          <thead>
            <tr>
              {COLUMNS.map(([c, label]) => (
                <th
                  key={c}
                  aria-sort={sort === c ? (desc ? 'descending' : 'ascending') : 'none'}
                  scope="col"
                >
                  <a
                    href={href('artefacts', {
                      ...params,
                      sort: c,
                      desc: sort === c && !desc ? '1' : '',
                    })}
                  >
                    {label}
                    {sort === c ? (desc ? ' ▼' : ' ▲') : ''}
                  </a>
                </th>
              ))}
              <th scope="col">Reason</th>
            </tr>
          </thead>
          <tbody>
            {shown.map((r) => (
              <tr key={r.path} data-row={r.path} className={selected === r.path ? 'sel' : ''}>
                <td>
                  <a className="path" href={href('artefacts', { ...params, sel: r.path })}>
                    {r.path}
                  </a>
                </td>
                <td>
                  <span className={`pill s-${r.state}`}>{STATE_LABEL[r.state]}</span>
                </td>
                <td>{r.rule}</td>
                <td>{r.pods.join(', ')}</td>
                <td>{r.updated ? new Date(r.updated).toLocaleTimeString() : ''}</td>
                <td className="reason">{r.reason}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </section>
      {selected && (
        <ArtefactPanel
          path={selected}
          close={href('artefacts', { ...params, sel: '' })}
          view="artefacts"
        />
      )}
    </div>
  );
}
