import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { checkName, checkProject, slugify } from '@computepods/protocol';

export interface FsWatcherConfig {
  readonly project: string;
  /** A subject token: log chunks go to `cp.<project>.logs.<pod>`. */
  readonly pod: string;
  readonly root: string;
  readonly stampFile: string;
  readonly ignoreFile: string;
  readonly debounceMs: number;
  /** gitignore-style patterns of files streamed like `tail -f` instead of hashed. */
  readonly logPatterns: readonly string[];
}

function positive(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0)
    throw new Error(`${name} must be a number of milliseconds, got ${JSON.stringify(value)}`);
  return n;
}

function patterns(value: string | undefined): string[] {
  if (value === undefined) return ['*.log'];
  return value
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean);
}

export function fsWatcherConfig(env: NodeJS.ProcessEnv = process.env): FsWatcherConfig {
  const project = checkProject(env.CP_PROJECT ?? 'demo');
  const root = resolve(env.CP_WORKSPACE ?? '.');
  return {
    project,
    // A host name may hold dots or capitals; a pod name must be one subject token.
    pod: env.CP_POD ? checkName('pod name (CP_POD)', env.CP_POD) : slugify(hostname()),
    root,
    stampFile: resolve(env.CP_STATE_DIR ?? '.state', 'fswatcher', 'stamps'),
    ignoreFile: resolve(root, env.CP_IGNORE_FILE ?? '.cpignore'),
    debounceMs: positive('CP_DEBOUNCE_MS', env.CP_DEBOUNCE_MS, 20),
    logPatterns: patterns(env.CP_LOG_PATTERNS),
  };
}
