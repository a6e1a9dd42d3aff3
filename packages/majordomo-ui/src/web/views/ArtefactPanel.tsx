import { useEffect, useState } from 'react';
import { ApiError } from '../api.js';
import { useSession, useSnapshot } from '../context.js';
import { inputsOf } from '../layout.js';
import { href, type View } from '../route.js';
import { reasonOf, STATE_LABEL, shownState } from '../store.js';
import type { ArtefactDetail } from '../types.js';

/** The result of a control, shown where it was asked for. */
export function useAction(): [
  { ok: boolean; text: string } | null,
  (label: string, run: () => Promise<unknown>) => Promise<void>,
] {
  const [result, setResult] = useState<{ ok: boolean; text: string } | null>(null);
  const act = async (label: string, run: () => Promise<unknown>) => {
    setResult({ ok: true, text: `${label}…` });
    try {
      const r = (await run()) as { message?: string; status?: string } | undefined;
      setResult({
        ok: true,
        text: `${label}: ${r?.message ?? r?.status ?? (r === undefined ? 'done' : JSON.stringify(r))}`,
      });
    } catch (err) {
      const e = err as Error;
      setResult({
        ok: false,
        text: `${label} refused: ${e instanceof ApiError ? `${e.message} (${e.code})` : e.message}`,
      });
    }
  };
  return [result, act];
}

export function ActionResult({ result }: { result: { ok: boolean; text: string } | null }) {
  return (
    <p className={`result ${result?.ok === false ? 'bad' : ''}`} role="status" aria-live="polite">
      {result?.text ?? ''}
    </p>
  );
}

export function ArtefactPanel({ path, close, view }: { path: string; close: string; view: View }) {
  const { api } = useSession();
  const snap = useSnapshot();
  const rec = snap.records.get(path);
  const [detail, setDetail] = useState<ArtefactDetail | null>(null);
  const [error, setError] = useState('');
  const [result, act] = useAction();
  // Read again whenever the record changes, so `why` follows the state.
  useEffect(() => {
    // Nothing to ask while the project has no record of it (a link to an artefact not made
    // yet): the record's arrival runs this again. Asking would be a 404 in the console.
    if (!rec) {
      setDetail(null);
      setError('');
      return;
    }
    let live = true;
    api
      .get<ArtefactDetail>(`/api/artefact?path=${encodeURIComponent(path)}`)
      .then((d) => {
        if (!live) return;
        setDetail(d);
        setError('');
      })
      .catch((e: Error) => {
        if (!live) return;
        setDetail(null);
        setError(e.message);
      });
    return () => {
      live = false;
    };
  }, [api, path, rec]);

  const state = shownState(snap, path);
  const producer = detail?.producer ?? rec?.producer ?? null;
  const task = producer ? snap.graph?.tasks.find((t) => t.id === producer) : undefined;
  const inFlight = producer ? snap.builds.find((b) => b.taskId === producer) : undefined;
  const buildIds = new Set([rec?.buildId, inFlight?.buildId].filter(Boolean));
  // The runner tasks that wrote (or tried to write) it, newest first.
  const runs = snap.tasks
    .filter(
      (t) =>
        (t.task.buildId && buildIds.has(t.task.buildId)) || t.task.files?.outputs.includes(path),
    )
    .slice(0, 5);
  const link = (p: string) => (
    <a href={href(view, { sel: p })} className="path">
      {p}
    </a>
  );

  return (
    <aside className="panel" aria-label={`artefact ${path}`} data-panel={path}>
      <header>
        <h2 className="path">{path}</h2>
        <a href={close} className="close" aria-label="close details">
          ×
        </a>
      </header>
      <p>
        <span className={`pill s-${state}`} data-state={state}>
          {STATE_LABEL[state]}
        </span>{' '}
        <span className="reason">{reasonOf(snap, path)}</span>
      </p>
      {error && <p className="bad">{error}</p>}
      {!rec && (
        <p className="reason" data-no-record>
          No record of {path} yet: this panel fills in when MajorDomo records it.
        </p>
      )}
      <div className="actions">
        {producer && (
          <button
            type="button"
            onClick={() => act('Rebuild', () => api.post('/api/builds', { path, force: true }))}
          >
            Rebuild (force)
          </button>
        )}
        {inFlight && (
          <button
            type="button"
            onClick={() =>
              act('Cancel', () => api.delete(`/api/builds/${encodeURIComponent(inFlight.taskId)}`))
            }
          >
            Cancel build
          </button>
        )}
      </div>
      <ActionResult result={result} />
      <dl className="facts">
        <dt>producer</dt>
        <dd data-fact="producer">{producer ?? '— (a source)'}</dd>
        <dt>sha256</dt>
        <dd data-fact="sha256" className="hash">
          {rec?.sha256 ?? '—'}
        </dd>
        {rec?.cutoff && rec.cutoff !== rec.sha256 && (
          <>
            <dt>cutoff hash</dt>
            <dd data-fact="cutoff" className="hash">
              {rec.cutoff}
            </dd>
          </>
        )}
        <dt>size</dt>
        <dd data-fact="size">{rec?.size ?? '—'}</dd>
        <dt>pods</dt>
        <dd data-fact="pods">{rec?.pods.length ? rec.pods.join(', ') : '—'}</dd>
        <dt>build</dt>
        <dd data-fact="build" className="hash">
          {rec?.buildId ?? '—'}
        </dd>
        <dt>updated</dt>
        <dd>{rec ? new Date(rec.updated).toLocaleString() : '—'}</dd>
        {rec?.error && (
          <>
            <dt>error</dt>
            <dd data-fact="error" className="error-text">
              {rec.error}
            </dd>
          </>
        )}
      </dl>
      {runs.length > 0 && (
        <>
          <h3>Tasks</h3>
          <ul className="plain">
            {runs.map((t) => (
              <li key={t.task.taskId}>
                <a href={href('logs', {}, t.task.taskId)} data-log={t.task.taskId}>
                  log of {t.task.taskId}
                </a>{' '}
                <span className={`pill t-${t.state}`}>{t.state}</span>
                {t.jobId ? ` SLURM job ${t.jobId}` : ''}
              </li>
            ))}
          </ul>
        </>
      )}
      <h3>Why</h3>
      {detail?.why.length ? (
        <ol className="why">
          {detail.why.map((w) => (
            <li key={`${w.artefact}:${w.because}`}>
              {link(w.artefact)}: {w.because}
            </li>
          ))}
        </ol>
      ) : (
        <p className="muted">
          {detail || !rec || error ? 'Nothing makes it out of date.' : 'Reading…'}
        </p>
      )}
      {task && (
        <>
          <h3>Inputs of {task.id}</h3>
          <ul className="plain">
            {inputsOf(task).map(([i, kind]) => (
              <li key={i} data-input={kind}>
                {link(i)}
                {kind === 'input' ? '' : ` (${kind})`}
              </li>
            ))}
          </ul>
          <h3>Outputs</h3>
          <ul className="plain">
            {task.outputs.map((o) => (
              <li key={o}>{link(o)}</li>
            ))}
          </ul>
        </>
      )}
    </aside>
  );
}
