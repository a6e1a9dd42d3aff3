import { useEffect, useState } from 'react';
import { useSession, useSnapshot } from '../context.js';

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
          <pre>{JSON.stringify(it, null, 2)}</pre>
        </details>
      ))}
    </section>
  );
}

export function ResourcesView() {
  const snap = useSnapshot();
  const byResource = new Map<string, number>();
  for (const t of snap.tasks)
    if (t.state === 'running' || t.state === 'submitted' || t.state === 'created')
      byResource.set(t.task.resource, (byResource.get(t.task.resource) ?? 0) + 1);
  return (
    <div className="resources-view">
      <p className="muted">
        Tasks not ended, by resource:{' '}
        {byResource.size ? [...byResource].map(([r, n]) => `${r}: ${n}`).join(', ') : 'none'}
      </p>
      <Listing title="Resources" path="/api/resources" />
      <Listing title="Profiles" path="/api/profiles" />
    </div>
  );
}
