// Every view and selection lives in the URL hash (#/graph?sel=out/a.pdf), so a link opens it
// and the back button works; the server only ever serves `/`.
import { useEffect, useState } from 'react';

export type View = 'graph' | 'artefacts' | 'builds' | 'logs' | 'resources';
export const VIEWS: readonly View[] = ['graph', 'artefacts', 'builds', 'logs', 'resources'];

export interface Route {
  view: View;
  /** For logs: the task id. */
  arg: string;
  params: URLSearchParams;
}

export function parseRoute(hash: string): Route {
  const [path = '', query = ''] = hash.replace(/^#\/?/, '').split('?', 2);
  const [first = '', ...rest] = path.split('/');
  const view = (VIEWS as readonly string[]).includes(first) ? (first as View) : 'graph';
  return { view, arg: decodeURIComponent(rest.join('/')), params: new URLSearchParams(query) };
}

/** The hash for a view, its argument and its parameters (empty ones left out). */
export function href(
  view: View,
  params: Record<string, string | undefined> = {},
  arg = '',
): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v) q.set(k, v);
  const qs = q.toString();
  return `#/${view}${arg ? `/${encodeURIComponent(arg)}` : ''}${qs ? `?${qs}` : ''}`;
}

export function useRoute(): Route {
  const [hash, setHash] = useState(() => location.hash);
  useEffect(() => {
    const on = () => setHash(location.hash);
    window.addEventListener('hashchange', on);
    return () => window.removeEventListener('hashchange', on);
  }, []);
  return parseRoute(hash);
}

/** Changes one parameter of the current route, as a new history entry. */
export function setParam(route: Route, key: string, value: string | undefined): void {
  const params = Object.fromEntries(route.params);
  params[key] = value ?? '';
  location.hash = href(route.view, params, route.arg);
}
