import { Fragment, useEffect, useState } from 'react';
import { useSession, useSnapshot } from '../context.js';
import { fieldsOf } from '../fields.js';
import { TERMINAL } from '../types.js';

type Item = Record<string, unknown>;

function Listing({ title, path }: { title: string; path: string }) {
  const { api } = useSession();
  const [items, setItems] = useState<Item[] | null>(null);
  const [error, setError] = useState('');
  useEffect(() => {
    api
      .get<Item[]>(path)
      .then(setItems)
      .catch((e: Error) => setError(e.message));
  }, [api, path]);
  return (
    <section aria-label={title}>
      <h2>{title}</h2>
      {error && <p className="bad">{error}</p>}
      {items?.length === 0 && <p className="muted">None bound to this project's queues.</p>}
      {items?.map((it) => (
        <details key={String(it.id)} open className="card" data-item={String(it.id)}>
          <summary>
            <strong className="path">{String(it.id)}</strong>{' '}
            <span className="pill">{String(it.type ?? '')}</span>
          </summary>
          <dl className="facts">
            {fieldsOf(it, ['id', 'type']).map(([k, v]) => (
              <Fragment key={k}>
                <dt>{k}</dt>
                <dd className="path" data-setting={k}>
                  {v}
                </dd>
              </Fragment>
            ))}
          </dl>
        </details>
      ))}
    </section>
  );
}

interface QueueDepth {
  queue: string;
  resource: string;
  profile?: string;
  concurrency: number;
  waiting: number;
  pulled: number;
  pullRequests: number;
  lastPulled: string | null;
  served: boolean;
  runners: number;
}

/** Tasks a queue's runners have taken and not ended, by state. */
type Taken = ReadonlyMap<string, { waiting: number; paused: number; running: number }>;

/**
 * Each queue's depth, re-read when the task list moves (a task submitted, taken or ended): the
 * tasks still in NATS (not yet taken, or taken and not yet recorded by a runner) and those a
 * runner recorded but has not started (its own queue: all its slots busy), paused or running.
 */
function Queues({ taken }: { taken: Taken }) {
  const { api } = useSession();
  const snap = useSnapshot();
  const [queues, setQueues] = useState<QueueDepth[] | null>(null);
  const [error, setError] = useState('');
  // biome-ignore lint/correctness/useExhaustiveDependencies: re-read when the tasks change
  useEffect(() => {
    let live = true;
    api
      .get<QueueDepth[]>('/api/queues')
      .then((q) => {
        if (live) setQueues(q);
      })
      .catch((e: Error) => {
        if (live) setError(e.message);
      });
    return () => {
      live = false;
    };
  }, [api, snap.tasks]);
  return (
    <section aria-label="Queues">
      <h2>Queues</h2>
      {error && <p className="bad">{error}</p>}
      {queues?.length === 0 && <p className="muted">The project has no queue.</p>}
      {queues && queues.length > 0 && (
        <table className="grid">
          <thead>
            <tr>
              <th>queue</th>
              <th>resource</th>
              <th>profile</th>
              <th title="the tasks not started: in NATS, or taken by a runner that has no free slot">
                waiting
              </th>
              <th>paused</th>
              <th>running</th>
              <th>at once</th>
              <th>runners</th>
            </tr>
          </thead>
          <tbody>
            {queues.map((q) => {
              const t = taken.get(q.queue);
              const inNats = q.waiting + q.pulled;
              const onRunner = t?.waiting ?? 0;
              return (
                <tr key={q.queue} data-queue={q.queue}>
                  <td className="path">{q.queue}</td>
                  <td>{q.resource}</td>
                  <td>{q.profile ?? ''}</td>
                  <td
                    data-field="waiting"
                    title={`${inNats} in NATS, ${onRunner} taken by a runner`}
                  >
                    {inNats + onRunner}
                  </td>
                  <td data-field="paused">{t?.paused ?? 0}</td>
                  <td data-field="running">{t?.running ?? 0}</td>
                  <td>{q.concurrency}</td>
                  <td data-field="runner">
                    {q.runners > 0
                      ? `${q.runners} listening`
                      : !q.served
                        ? 'none ever attached: nothing runs these tasks'
                        : 'none listening now'}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
    </section>
  );
}

export function ResourcesView() {
  const snap = useSnapshot();
  const byResource = new Map<string, number>();
  const taken = new Map<string, { waiting: number; paused: number; running: number }>();
  for (const t of snap.tasks) {
    if (TERMINAL.includes(t.state)) continue;
    byResource.set(t.task.resource, (byResource.get(t.task.resource) ?? 0) + 1);
    const q = t.queue ?? t.task.resource;
    const n = taken.get(q) ?? { waiting: 0, paused: 0, running: 0 };
    if (t.state === 'running') n.running++;
    else if (t.state === 'paused') n.paused++;
    else n.waiting++;
    taken.set(q, n);
  }
  return (
    <div className="resources-view">
      <Queues taken={taken} />
      <p className="muted">
        Tasks not ended, by resource:{' '}
        {byResource.size ? [...byResource].map(([r, n]) => `${r}: ${n}`).join(', ') : 'none'}
      </p>
      <Listing title="Resources" path="/api/resources" />
      <Listing title="Profiles" path="/api/profiles" />
    </div>
  );
}
