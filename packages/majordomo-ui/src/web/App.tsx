import { type FormEvent, useEffect, useMemo, useState } from 'react';
import { Api, ApiError, whoami } from './api.js';
import { type Session, SessionContext, useSnapshot } from './context.js';
import { href, type Route, useRoute, type View } from './route.js';
import { ProjectStore } from './store.js';
import { ArtefactsView } from './views/ArtefactsView.js';
import { BuildsView } from './views/BuildsView.js';
import { GraphView } from './views/GraphView.js';
import { LogsView } from './views/LogsView.js';
import { ResourcesView } from './views/ResourcesView.js';

// The token lives in sessionStorage (gone with the tab) and travels only in headers.
const KEY = 'computepods.token';

const refusal = (err: unknown) =>
  err instanceof ApiError
    ? err.status === 401 || err.status === 403
      ? `That token was refused: ${err.message}`
      : `MajorDomo answered ${err.status}: ${err.message}`
    : `Could not reach MajorDomo: ${(err as Error).message}`;

function Login({
  onLogin,
  message,
}: {
  onLogin: (token: string) => Promise<void>;
  message: string;
}) {
  const [token, setToken] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(message);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const t = token.trim();
    if (!t) {
      setError('Enter the API token: `up` prints it (or ask a project admin for one).');
      return;
    }
    setBusy(true);
    try {
      await onLogin(t);
    } catch (err) {
      setError(refusal(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <main className="login">
      <h1>MajorDomo</h1>
      <form onSubmit={submit} aria-label="log in">
        <label htmlFor="token">API token</label>
        <input
          id="token"
          name="token"
          type="password"
          autoComplete="off"
          // biome-ignore lint/a11y/noAutofocus: the only thing to do on this page
          autoFocus
          value={token}
          onChange={(e) => setToken(e.target.value)}
        />
        <button type="submit" disabled={busy}>
          Log in
        </button>
        <p className="bad" role="alert" data-login-error>
          {error}
        </p>
        <p className="muted">
          The token printed by <code>bash scripts/up</code> (the bootstrap admin's), or one from{' '}
          <code>cpctrl token create --user NAME</code>. It is kept for this tab only.
        </p>
      </form>
    </main>
  );
}

const NAV: Array<[View, string]> = [
  ['graph', 'Graph'],
  ['artefacts', 'Artefacts'],
  ['builds', 'Builds'],
  ['logs', 'Logs'],
  ['resources', 'Resources'],
];

/**
 * The project this page shows, and the other projects' pages to go to (CP_UI_PROJECTS): each is
 * another MajorDomo, at another address, so going there is a plain link and its own login (a
 * token is one project's; this one is never sent there).
 */
function ProjectSwitcher({ session }: { session: Session }) {
  if (!session.projects.length)
    return session.project ? (
      <span className="project" data-project={session.project}>
        {session.project}
      </span>
    ) : null;
  return (
    <label className="project">
      <span className="sr-only">Project</span>
      <select
        data-project={session.project}
        value={session.project}
        onChange={(e) => {
          const to = session.projects.find((p) => p.name === e.target.value);
          if (to) window.location.assign(to.url);
        }}
      >
        <option value={session.project}>{session.project}</option>
        {session.projects.map((p) => (
          <option key={p.name} value={p.name}>
            {p.name}
          </option>
        ))}
      </select>
    </label>
  );
}

function Shell({ route, session, logout }: { route: Route; session: Session; logout: () => void }) {
  const snap = useSnapshot();
  return (
    <div className="shell">
      <button
        type="button"
        className="skip"
        onClick={() => document.getElementById('main')?.focus()}
      >
        Skip to content
      </button>
      <header className="top">
        <strong>MajorDomo</strong>
        <ProjectSwitcher session={session} />
        <nav aria-label="views">
          {NAV.map(([v, label]) => (
            <a key={v} href={href(v)} aria-current={route.view === v ? 'page' : undefined}>
              {label}
            </a>
          ))}
        </nav>
        <span
          className={`stream ${snap.stream}`}
          data-stream-state={snap.stream}
          title={snap.streamDetail ?? ''}
        >
          {snap.stream === 'live'
            ? '● live'
            : snap.stream === 'connecting'
              ? '○ connecting'
              : '○ reconnecting'}
        </span>
        <span className="who">
          {session.user} ({session.role})
        </span>
        <button type="button" onClick={logout}>
          Log out
        </button>
      </header>
      {snap.error && (
        <p className="banner bad" role="alert">
          {snap.error}
        </p>
      )}
      <main id="main" tabIndex={-1} data-view={route.view}>
        {route.view === 'graph' && <GraphView route={route} />}
        {route.view === 'artefacts' && <ArtefactsView route={route} />}
        {route.view === 'builds' && <BuildsView route={route} />}
        {route.view === 'logs' && <LogsView route={route} />}
        {route.view === 'resources' && <ResourcesView />}
      </main>
    </div>
  );
}

export function App() {
  const route = useRoute();
  const [session, setSession] = useState<Session | null>(null);
  const [message, setMessage] = useState('');
  const [checking, setChecking] = useState(() => !!sessionStorage.getItem(KEY));

  const logout = useMemo(
    () =>
      (why = '') => {
        sessionStorage.removeItem(KEY);
        setSession((s) => {
          s?.store.stop();
          return null;
        });
        setMessage(why);
      },
    [],
  );

  const login = useMemo(
    () => async (token: string) => {
      const who = await whoami(token);
      sessionStorage.setItem(KEY, token);
      const api = new Api(token);
      const store = new ProjectStore(api);
      api.onUnauthorized = (err) => logout(`Logged out: ${err.message}`);
      store.onRefused = (m) => logout(`Logged out: the event stream refused the token: ${m}`);
      store.start();
      setMessage('');
      setSession({
        api,
        store,
        user: who.user,
        role: who.role,
        project: who.project,
        projects: who.projects,
      });
    },
    [logout],
  );

  useEffect(() => {
    const token = sessionStorage.getItem(KEY);
    if (!token) return;
    login(token)
      .catch((err) => logout(refusal(err)))
      .finally(() => setChecking(false));
  }, [login, logout]);

  if (checking && !session) return <p className="muted">Checking the saved token…</p>;
  if (!session) return <Login onLogin={login} message={message} />;
  return (
    <SessionContext.Provider value={session}>
      <Shell route={route} session={session} logout={() => logout()} />
    </SessionContext.Provider>
  );
}
