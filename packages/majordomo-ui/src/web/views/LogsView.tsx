import { useEffect, useMemo, useState } from 'react';
import { parseAnsi } from '../ansi.js';
import { useSession, useSnapshot } from '../context.js';
import { href, type Route } from '../route.js';
import { PAUSABLE, TERMINAL } from '../types.js';
import { ActionResult, useAction } from './ArtefactPanel.js';

type Stream = 'stdout' | 'stderr';

/** A log's text as coloured spans: React renders them as text, escapes and all. */
function AnsiText({ text }: { text: string }) {
  const spans = useMemo(() => parseAnsi(text), [text]);
  return (
    <>
      {spans.map((s, i) => (
        // biome-ignore lint/suspicious/noArrayIndexKey: spans have no identity but their place
        <span key={i} className={s.classes || undefined}>
          {s.text}
        </span>
      ))}
    </>
  );
}

function useLog(taskId: string, stream: Stream, live: boolean): { text: string; error: string } {
  const { api } = useSession();
  const [log, setLog] = useState({ text: '', error: '' });
  useEffect(() => {
    let stop = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const read = async () => {
      try {
        const text = await api.text(`/api/logs/${encodeURIComponent(taskId)}?stream=${stream}`);
        if (!stop) setLog({ text, error: '' });
      } catch (err) {
        if (!stop) setLog((l) => ({ text: l.text, error: (err as Error).message }));
      }
      // Read again while the task runs (live log streaming will replace this).
      if (!stop && live) timer = setTimeout(read, 1000);
    };
    void read();
    return () => {
      stop = true;
      if (timer) clearTimeout(timer);
    };
  }, [api, taskId, stream, live]);
  return log;
}

function LogPane({ taskId, stream, live }: { taskId: string; stream: Stream; live: boolean }) {
  const { text, error } = useLog(taskId, stream, live);
  return <LogText stream={stream} live={live} text={text} error={error} />;
}

function LogText({
  stream,
  live,
  text,
  error,
}: {
  stream: Stream;
  live: boolean;
  text: string;
  error: string;
}) {
  return (
    <section className="log" aria-label={stream} data-stream={stream}>
      <h3>
        {stream} {live && <span className="pill t-running">following</span>}
      </h3>
      {error && <p className="muted">{error}</p>}
      <pre className="ansi">
        <AnsiText text={text} />
      </pre>
    </section>
  );
}

export function LogsView({ route }: { route: Route }) {
  const { api } = useSession();
  const snap = useSnapshot();
  const taskId = route.arg;
  const [result, act] = useAction();
  const rec = snap.tasks.find((t) => t.task.taskId === taskId);
  const state =
    rec?.state ?? (rec?.task.buildId ? snap.taskStates.get(rec.task.buildId) : undefined);
  const live = !!taskId && (!state || !TERMINAL.includes(state));

  if (!taskId)
    return (
      <section className="logs-view" aria-label="logs">
        <h2>Logs</h2>
        <p>Pick a task (newest first):</p>
        <ul className="plain">
          {snap.tasks.slice(0, 100).map((t) => (
            <li key={t.task.taskId}>
              <a href={href('logs', {}, t.task.taskId)}>{t.task.taskId}</a>{' '}
              <span className={`pill t-${t.state}`}>{t.state}</span>{' '}
              <span className="muted">{t.task.resource}</span>
            </li>
          ))}
        </ul>
      </section>
    );
  const control = (action: 'pause' | 'resume' | 'kill') => (
    <button
      type="button"
      onClick={() =>
        act(`${action}`, () => api.post(`/api/tasks/${encodeURIComponent(taskId)}/${action}`))
      }
    >
      {action}
    </button>
  );
  return (
    <section className="logs-view" aria-label={`logs of ${taskId}`}>
      <h2>
        Task <span className="path">{taskId}</span>{' '}
        {state && (
          <span className={`pill t-${state}`} data-task-state={state}>
            {state}
          </span>
        )}
      </h2>
      {rec && (
        <p className="muted">
          {rec.task.resource}
          {rec.runner ? ` on ${rec.runner}` : ''}
          {rec.jobId ? ` · SLURM job ${rec.jobId}` : ''}
          {rec.exitCode !== undefined && rec.exitCode !== null ? ` · exit ${rec.exitCode}` : ''}
          {rec.reason && !/^exit code \d+$/.test(rec.reason) ? ` · ${rec.reason}` : ''}
        </p>
      )}
      {state && !TERMINAL.includes(state) && (
        <div className="actions">
          {state === 'paused' && control('resume')}
          {PAUSABLE.includes(state) && control('pause')}
          {control('kill')}
        </div>
      )}
      <ActionResult result={result} />
      {(['stderr', 'stdout'] as const).map((s) =>
        // A task that has not started has no log to read yet: asked for once it names one.
        rec && !(s === 'stdout' ? rec.stdoutPath : rec.stderrPath) ? (
          <LogText
            key={s}
            stream={s}
            live={false}
            text=""
            error={`no ${s} yet (the task is ${rec.state})`}
          />
        ) : (
          <LogPane key={s} taskId={taskId} stream={s} live={live} />
        ),
      )}
    </section>
  );
}
