import { createContext, useContext, useSyncExternalStore } from 'react';
import type { Api } from './api.js';
import type { ProjectStore, Snapshot } from './store.js';

export interface Session {
  api: Api;
  store: ProjectStore;
  user: string;
  role: string;
  project: string;
  projects: ReadonlyArray<{ name: string; url: string }>;
}

export const SessionContext = createContext<Session | null>(null);

export function useSession(): Session {
  const s = useContext(SessionContext);
  if (!s) throw new Error('no session');
  return s;
}

export function useSnapshot(): Snapshot {
  const { store } = useSession();
  return useSyncExternalStore(store.subscribe, store.get);
}

/**
 * One value read from the snapshot: the component renders again only when that value changes
 * (compared with Object.is, so select a string, number or boolean), not on every event.
 */
export function useSelected<T>(select: (s: Snapshot) => T): T {
  const { store } = useSession();
  return useSyncExternalStore(store.subscribe, () => select(store.get()));
}
