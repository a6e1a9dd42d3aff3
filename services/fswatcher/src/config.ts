import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { checkName, checkProject, envInt, slugify, TIMER_MS } from '@computepods/protocol';

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
    debounceMs: envInt(env, 'CP_DEBOUNCE_MS', 20, { ...TIMER_MS, min: 0 }),
    logPatterns: patterns(env.CP_LOG_PATTERNS),
  };
}
