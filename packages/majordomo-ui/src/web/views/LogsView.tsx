import { useVirtualizer } from '@tanstack/react-virtual';
import { useEffect, useLayoutEffect, useRef, useState } from 'react';
import { LogLines, type Span } from '../ansi.js';
import { useSession, useSnapshot } from '../context.js';
import { href, type Route } from '../route.js';
import { SseParser } from '../sse.js';
import { PAUSABLE, TERMINAL } from '../types.js';
import { ActionResult, useAction } from './ArtefactPanel.js';

type Stream = 'stdout' | 'stderr';

/** One line of a log as coloured spans: React renders them as text, escapes and all. */
function AnsiLine({ spans }: { spans: Span[] }) {
  return (
    <>
      {spans.map((s, i) => (
        // biome-ignore lint/suspicious/noArrayIndexKey: spans have no identity but their place
        <span key={i} className={s.classes || undefined}>
          {s.text}
        </span>
      ))}
      {'\n'}
    </>
  );
}

/**
 * A log's lines, only those in view drawn (a 4 MiB log is tens of thousands of lines): rows are
 * measured as drawn, so a wrapped line takes its height. Scrolled to the end, it stays at the
 * end as the log grows (as `tail -f` does); scrolled up, it stays where it was put.
 */
function AnsiLines({ lines, version }: { lines: LogLines; version: number }) {
  const box = useRef<HTMLPreElement>(null);
  const atEnd = useRef(true);
  const rows = useVirtualizer({
    count: lines.count,
    getScrollElement: () => box.current,
    estimateSize: () => 18,
    overscan: 30,
  });
  // biome-ignore lint/correctness/useExhaustiveDependencies: follows the log's growth
  useLayoutEffect(() => {
    if (atEnd.current && lines.count) rows.scrollToIndex(lines.count - 1, { align: 'end' });
  }, [version]);
  return (
    <pre
      className="ansi"
      ref={box}
      data-lines={lines.count}
      onScroll={(e) => {
        const el = e.currentTarget;
        atEnd.current = el.scrollHeight - el.scrollTop - el.clientHeight < 24;
      }}
    >
      <div className="ansi-rows" style={{ height: rows.getTotalSize() }}>
        {rows.getVirtualItems().map((row) => (
          <div
            key={row.key}
            data-index={row.index}
            ref={rows.measureElement}
            className="ansi-row"
            style={{ transform: `translateY(${row.start}px)` }}
          >
            <AnsiLine spans={lines.line(row.index)} />
          </div>
        ))}
      </div>
    </pre>
  );
}

interface Log {
  lines: LogLines;
  /** LogLines.version when set: React re-renders on it, the lines grow in place. */
  version: number;
  error: string;
}

const logOf = (text: string): Log => {
  const lines = new LogLines();
  lines.append(text);
  return { lines, version: lines.version, error: '' };
};

/**
 * A task's log: followed live (GET /api/logs/:task?follow=1, server-sent events read with fetch,
 * so the token stays in the header) while the task runs, read once when it has ended (that
 * read also finds a log NATS no longer holds, in the runner's folder). A follow that drops
 * before the end resumes from the last offset.
 */
function useLog(taskId: string, stream: Stream, live: boolean): Log {
  const { api } = useSession();
  const [log, setLog] = useState<Log>(() => logOf(''));
  useEffect(() => {
    const abort = new AbortController();
    const path = `/api/logs/${encodeURIComponent(taskId)}?stream=${stream}`;
    /**
     * The log as it stands; true when that is all of it: read from its file, or NATS holds its
     * end marker. A task just ended may still have its last pieces on the way from its runner
     * (it publishes them, then the marker, after the task's end is recorded).
     */
    const readOnce = async (): Promise<boolean> => {
      try {
        const res = await api.response(path);
        const text = await res.text();
        if (!abort.signal.aborted) setLog(logOf(text));
        return res.headers.get('x-cp-log-source') === 'file' || res.headers.has('x-cp-log-ended');
      } catch (err) {
        if (!abort.signal.aborted) setLog((l) => ({ ...l, error: (err as Error).message }));
        return true;
      }
    };
    const follow = async () => {
      const decoder = new TextDecoder();
      const lines = new LogLines();
      const show = (error = '') => setLog({ lines, version: lines.version, error });
      let offset = 0;
      let ended = false;
      for (let attempt = 0; !ended && !abort.signal.aborted && attempt < 5; attempt++) {
        if (attempt > 0) await new Promise((r) => setTimeout(r, 1000));
        try {
          const res = await fetch(`${path}&follow=1&from=${offset}`, {
            headers: api.headers({ accept: 'text/event-stream' }),
            signal: abort.signal,
            cache: 'no-store',
          });
          if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
          const parser = new SseParser((m) => {
            const body = JSON.parse(m.data) as {
              offset?: number;
              data?: string;
              attempt?: number;
              bytes?: number;
              error?: { message?: string };
            };
            if (m.event === 'data' && body.data !== undefined) {
              const bytes = Uint8Array.from(atob(body.data), (c) => c.charCodeAt(0));
              lines.append(decoder.decode(bytes, { stream: true }));
              offset = (body.offset ?? offset) + bytes.length;
            } else if (m.event === 'restart')
              lines.append(`\n--- started again (attempt ${body.attempt}) ---\n`);
            else if (m.event === 'truncated')
              lines.append('\n--- cut here: the log reached its cap ---\n');
            else if (m.event === 'missing')
              lines.append(`\n--- ${body.bytes} bytes no longer kept ---\n`);
            else if (m.event === 'end') ended = true;
            else if (m.event === 'error') throw new Error(body.error?.message ?? 'log unavailable');
            if (body.offset !== undefined && m.event !== 'data')
              offset = Math.max(offset, body.offset);
            show();
          });
          const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            parser.push(value);
          }
        } catch (err) {
          if (abort.signal.aborted) return;
          show(`following the log: ${(err as Error).message}`);
        }
      }
      // The whole log once it ended (or following gave up): one read, which the page keeps.
      if (!abort.signal.aborted) await readOnce();
    };
    // An ended task's log whose end has not come yet is followed to it.
    void (live
      ? follow()
      : readOnce().then((whole) => {
          if (!whole && !abort.signal.aborted) return follow();
        }));
    return () => abort.abort();
  }, [api, taskId, stream, live]);
  return log;
}

function LogPane({ taskId, stream, live }: { taskId: string; stream: Stream; live: boolean }) {
  return <LogText stream={stream} live={live} log={useLog(taskId, stream, live)} />;
}

function LogText({ stream, live, log }: { stream: Stream; live: boolean; log: Log }) {
  return (
    <section className="log" aria-label={stream} data-stream={stream}>
      <h3>
        {stream} {live && <span className="pill t-running">following</span>}
      </h3>
      {log.error && <p className="muted">{log.error}</p>}
      <AnsiLines lines={log.lines} version={log.version} />
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
            log={{ ...logOf(''), error: `no ${s} yet (the task is ${rec.state})` }}
          />
        ) : (
          <LogPane key={s} taskId={taskId} stream={s} live={live} />
        ),
      )}
    </section>
  );
}
