import { useEffect, useState } from 'react';
import { useSession, useSnapshot } from '../context.js';
import { href, type Route } from '../route.js';
import { PAUSABLE, type TaskRecord, TERMINAL } from '../types.js';
import { ActionResult, useAction } from './ArtefactPanel.js';

type Span = { start: number; end: number };

const span = (t: TaskRecord, now: number): Span => {
  const times = t.history.map((h) => Date.parse(h.time));
  const start = times.length ? Math.min(...times) : Date.parse(t.updated);
  const end = TERMINAL.includes(t.state) ? Date.parse(t.updated) : now;
  return { start, end: Math.max(end, start) };
};

const duration = (ms: number) =>
  ms < 1000
    ? `${ms} ms`
    : ms < 60_000
      ? `${(ms / 1000).toFixed(1)} s`
      : `${Math.round(ms / 60_000)} min`;

interface PassBand {
  component: number;
  pass: number;
  start: number;
  end: number;
  steps: number;
  /** A task of the pass has not ended. */
  open: boolean;
}

/**
 * A cycle's passes on the time axis: the tasks of each pass of each cyclic component (known
 * from the step and pass the task record carries), one band per pass from its first task's
 * start to its last one's end. A pass number lower than the one before starts a new round
 * (the cycle ran again after an edit): its passes get bands of their own.
 */
function passBands(
  tasks: readonly TaskRecord[],
  spans: ReadonlyArray<{ start: number; end: number }>,
  cyclic: (stepId: string) => number | undefined,
): Map<number, PassBand[]> {
  const byComponent = new Map<number, Array<{ t: TaskRecord; pass: number; s: Span }>>();
  tasks.forEach((t, i) => {
    const step = t.task.step;
    const component = step && cyclic(step.id);
    const s = spans[i];
    if (!step || component === undefined || !s) return;
    byComponent.set(component, [...(byComponent.get(component) ?? []), { t, pass: step.pass, s }]);
  });
  const out = new Map<number, PassBand[]>();
  for (const [component, list] of byComponent) {
    list.sort((a, b) => a.s.start - b.s.start);
    const bands: PassBand[] = [];
    for (const { t, pass, s } of list) {
      const last = bands[bands.length - 1];
      const open = !TERMINAL.includes(t.state);
      if (last && last.pass === pass) {
        last.start = Math.min(last.start, s.start);
        last.end = Math.max(last.end, s.end);
        last.steps++;
        last.open ||= open;
      } else bands.push({ component, pass, start: s.start, end: s.end, steps: 1, open });
    }
    out.set(component, bands);
  }
  return out;
}

/** How the timeline's lanes are cut: by the runner that ran a task, or the chef that asked. */
type LaneBy = 'runner' | 'chef';

/** A task's lane: its runner (and resource), or the chef that submitted it. */
function laneOf(t: TaskRecord, by: LaneBy): string {
  if (by === 'chef') return t.task.step?.chef ? `chef ${t.task.step.chef}` : 'chef not recorded';
  return `${t.runner ?? 'not yet taken'} · ${t.task.resource}`;
}

/**
 * In-flight builds, and a timeline (Gantt) of the recent tasks, one lane per runner or, with
 * `lanes=chef` in the URL, per chef.
 */
export function BuildsView({ route }: { route: Route }) {
  const laneBy: LaneBy = route.params.get('lanes') === 'chef' ? 'chef' : 'runner';
  const { api } = useSession();
  const snap = useSnapshot();
  const [now, setNow] = useState(() => Date.now());
  const [result, act] = useAction();
  const running = snap.tasks.some((t) => !TERMINAL.includes(t.state));
  useEffect(() => {
    if (!running) return;
    const t = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(t);
  }, [running]);
  // biome-ignore lint/correctness/useExhaustiveDependencies: the clock moves with every new list
  useEffect(() => setNow(Date.now()), [snap.tasks]);

  // Which build (rule:stem, pass) a runner task ran: from the artefact records (no pass), then
  // the step and pass a task record carries, then build events and builds in flight.
  const names = new Map<string, string>();
  for (const r of snap.records.values())
    if (r.buildId && r.producer) names.set(r.buildId, r.producer);

  const tasks = snap.tasks.slice(0, 200);
  const spans = tasks.map((t) => span(t, now));
  const cyclicComponents = new Map(
    (snap.graph?.components ?? []).filter((c) => c.cyclic).map((c) => [c.id, c] as const),
  );
  const cycleOf = (stepId: string) => {
    const c = snap.components.get(stepId);
    return c !== undefined && cyclicComponents.has(c) ? c : undefined;
  };
  const passes = passBands(tasks, spans, cycleOf);
  // A task's step and pass name it, also when no build event did (it ran before the page
  // opened), and a cycle's step by its pass (an artefact record names only its producer).
  // A group's task (several steps of one rule in one build) by its first step and how many more.
  const more = (n: number | undefined) => (n ? ` and ${n} more` : '');
  for (const t of tasks) {
    const step = t.task.step;
    if (!step || !t.task.buildId) continue;
    names.set(
      t.task.buildId,
      (cycleOf(step.id) === undefined ? step.id : `${step.id} · pass ${step.pass}`) +
        more(step.also?.length),
    );
  }
  for (const [id, name] of snap.buildNames) names.set(id, name);
  const steps = new Map<string, number>();
  for (const b of snap.builds) steps.set(b.buildId, (steps.get(b.buildId) ?? 0) + 1);
  for (const b of snap.builds)
    if (!names.has(b.buildId) || (steps.get(b.buildId) ?? 0) === 1)
      names.set(
        b.buildId,
        `${b.taskId}${b.pass > 1 || b.cyclic ? ` · pass ${b.pass}` : ''}${more((steps.get(b.buildId) ?? 1) - 1)}`,
      );
  const t0 = spans.length ? Math.min(...spans.map((s) => s.start)) : now;
  const t1 = spans.length ? Math.max(now, ...spans.map((s) => s.end)) : now;
  const width = Math.max(t1 - t0, 1);
  const lanes = new Map<string, TaskRecord[]>();
  for (const t of tasks) {
    const lane = laneOf(t, laneBy);
    lanes.set(lane, [...(lanes.get(lane) ?? []), t]);
  }
  const control = (t: TaskRecord, action: 'pause' | 'resume' | 'kill') => (
    <button
      type="button"
      onClick={() =>
        act(`${action} ${t.task.taskId}`, () =>
          api.post(`/api/tasks/${encodeURIComponent(t.task.taskId)}/${action}`),
        )
      }
    >
      {action}
    </button>
  );

  return (
    <section className="builds-view" aria-label="builds">
      <h2>Builds in flight</h2>
      {snap.builds.length === 0 ? (
        <p className="muted">None: everything is settled.</p>
      ) : (
        <table className="grid">
          <thead>
            <tr>
              <th scope="col">Task</th>
              <th scope="col">Chef</th>
              <th scope="col">Pass</th>
              <th scope="col">Build id</th>
              <th scope="col" />
            </tr>
          </thead>
          <tbody>
            {snap.builds.map((b) => (
              <tr key={b.taskId} data-build={b.taskId}>
                <td>{b.taskId}</td>
                <td>{b.chef}</td>
                <td>
                  {b.pass}
                  {b.cyclic ? ' (cycle)' : ''}
                </td>
                <td className="hash">{b.buildId}</td>
                <td>
                  <button
                    type="button"
                    onClick={() =>
                      act(`Cancel ${b.taskId}`, () =>
                        api.delete(`/api/builds/${encodeURIComponent(b.taskId)}`),
                      )
                    }
                  >
                    Cancel
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <ActionResult result={result} />
      <h2>Timeline</h2>
      <p className="muted">
        The runners' last {tasks.length} tasks, {duration(width)} in all; one lane per {laneBy}, and
        one per cycle with a band for each of its passes.
      </p>
      <nav className="quick" aria-label="timeline lanes">
        Lanes:{' '}
        {(['runner', 'chef'] as const).map((by) => (
          <a
            key={by}
            href={href('builds', { lanes: by === 'runner' ? undefined : by })}
            className={`chip${by === laneBy ? ' on' : ''}`}
            aria-current={by === laneBy ? 'true' : undefined}
            data-lanes={by}
          >
            by {by}
          </a>
        ))}
      </nav>
      <div className="gantt">
        {[...passes].map(([component, bands]) => (
          <div key={`cycle-${component}`} className="lane cycle-lane" data-cycle-lane={component}>
            <div className="lane-name">
              cycle {component}: {cyclicComponents.get(component)?.tasks.join(', ')}
            </div>
            <ol className="bars">
              {bands.map((b) => (
                <li
                  key={`${b.pass}@${b.start}`}
                  className="bar-row"
                  data-cycle-pass={`${component}:${b.pass}`}
                >
                  <div className="bar-track">
                    <div
                      className={`bar pass-band${b.open ? ' t-running' : ''}`}
                      style={{
                        left: `${((b.start - t0) / width) * 100}%`,
                        width: `max(3px, ${((b.end - b.start) / width) * 100}%)`,
                      }}
                      title={`pass ${b.pass}: ${b.steps} steps, ${duration(b.end - b.start)}`}
                    />
                  </div>
                  <div className="bar-text">
                    pass {b.pass}
                    {cyclicComponents.get(component)?.passLimit
                      ? ` of at most ${cyclicComponents.get(component)?.passLimit}`
                      : ''}
                    : {b.steps} {b.steps === 1 ? 'step' : 'steps'}, {duration(b.end - b.start)}
                    {b.open ? ' · running' : ''}
                  </div>
                </li>
              ))}
            </ol>
          </div>
        ))}
        {[...lanes].map(([lane, list]) => (
          <div key={lane} className="lane" data-lane={lane}>
            <div className="lane-name">{lane}</div>
            <ol className="bars">
              {list.map((t) => {
                const s = span(t, now);
                const label =
                  names.get(t.task.buildId ?? '') ??
                  (t.task.files?.outputs.length
                    ? `→ ${t.task.files.outputs.join(', ')}`
                    : t.task.taskId);
                return (
                  <li key={t.task.taskId} className="bar-row" data-task={t.task.taskId}>
                    <div className="bar-track">
                      <div
                        className={`bar t-${t.state}`}
                        style={{
                          left: `${((s.start - t0) / width) * 100}%`,
                          width: `max(3px, ${((s.end - s.start) / width) * 100}%)`,
                        }}
                        title={`${label}: ${t.state}, ${duration(s.end - s.start)}`}
                      />
                    </div>
                    <div className="bar-text">
                      <a href={href('logs', {}, t.task.taskId)}>{label}</a>{' '}
                      <span className={`pill t-${t.state}`}>{t.state}</span>{' '}
                      {duration(s.end - s.start)} · {t.task.resource}
                      {t.jobId ? ` · SLURM job ${t.jobId}` : ''}
                      {t.exitCode !== undefined && t.exitCode !== null
                        ? ` · exit ${t.exitCode}`
                        : ''}
                      {!TERMINAL.includes(t.state) && (
                        <span className="inline-actions">
                          {t.state === 'paused' && control(t, 'resume')}
                          {PAUSABLE.includes(t.state) && control(t, 'pause')}
                          {control(t, 'kill')}
                        </span>
                      )}
                    </div>
                  </li>
                );
              })}
            </ol>
          </div>
        ))}
      </div>
    </section>
  );
}
