import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { checkProject } from '@computepods/protocol';

export interface FsWatcherConfig {
  readonly project: string;
  readonly pod: string;
  readonly root: string;
  readonly stampFile: string;
  readonly ignoreFile: string;
  readonly debounceMs: number;
}

function positive(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0)
    throw new Error(`${name} must be a number of milliseconds, got ${JSON.stringify(value)}`);
  return n;
}

export function fsWatcherConfig(env: NodeJS.ProcessEnv = process.env): FsWatcherConfig {
  const project = checkProject(env.CP_PROJECT ?? 'demo');
  const root = resolve(env.CP_WORKSPACE ?? '.');
  return {
    project,
    pod: env.CP_POD ?? hostname(),
    root,
    stampFile: resolve(env.CP_STATE_DIR ?? '.state', 'fswatcher', 'stamps'),
    ignoreFile: resolve(root, env.CP_IGNORE_FILE ?? '.cpignore'),
    debounceMs: positive('CP_DEBOUNCE_MS', env.CP_DEBOUNCE_MS, 20),
  };
}
