import { hostname } from 'node:os';
import { resolve } from 'node:path';
import {
  defineEnv,
  envIntType,
  envOptionalName,
  envString,
  envText,
  loadEnv,
  projectEnv,
  slugify,
  TIMER_MS,
} from '@computepods/protocol';

/** Every variable the fswatcher reads: its README's table is written from these (pnpm env-docs). */
export const fsWatcherEnv = defineEnv({
  ...projectEnv,
  CP_WORKSPACE: { schema: envString(), default: '.', doc: 'the directory watched' },
  CP_POD: {
    schema: envOptionalName(),
    shown: 'the host name, as a subject token',
    doc: "this pod's name (`a-z0-9_-`); log chunks go to `cp.<project>.logs.<pod>`",
  },
  CP_LOG_PATTERNS: {
    schema: envText(),
    default: '*.log',
    doc: 'comma-separated gitignore-style globs of files streamed like `tail -f` (`log.chunk` messages, core NATS) instead of hashed; `,` alone: none',
  },
  CP_IGNORE_FILE: {
    schema: envString(),
    default: '.cpignore',
    doc: 'gitignore-syntax file under the workspace',
  },
  CP_DEBOUNCE_MS: {
    schema: envIntType({ ...TIMER_MS, min: 0 }),
    default: '5',
    doc: 'quiet time before a changed file is hashed (a file found empty or gone gets a second look 50 ms later)',
  },
  CP_REPORT_WAIT_MS: {
    schema: envIntType({ ...TIMER_MS, min: 0 }),
    default: '2000',
    doc: "how long a look at a build's output waits for MajorDomo's record of it (the bytes its chef reported are then not announced again); then it is announced as usual",
  },
  CP_STATE_DIR: {
    schema: envString(),
    default: '.state',
    doc: 'stamps live in `$CP_STATE_DIR/fswatcher/stamps`',
  },
});

export interface FsWatcherConfig {
  readonly project: string;
  /** A subject token: log chunks go to `cp.<project>.logs.<pod>`. */
  readonly pod: string;
  readonly root: string;
  readonly stampFile: string;
  readonly ignoreFile: string;
  readonly debounceMs: number;
  /** How long a look at an output being built waits for MajorDomo's record of its bytes. */
  readonly reportWaitMs: number;
  /** gitignore-style patterns of files streamed like `tail -f` instead of hashed. */
  readonly logPatterns: readonly string[];
}

/** Settings from the environment (fsWatcherEnv); a bad value throws, naming the variable. */
export function fsWatcherConfig(env: NodeJS.ProcessEnv = process.env): FsWatcherConfig {
  const e = loadEnv(fsWatcherEnv, env);
  const root = resolve(e.CP_WORKSPACE);
  return {
    project: e.CP_PROJECT,
    // A host name may hold dots or capitals; a pod name must be one subject token.
    pod: e.CP_POD ?? slugify(hostname()),
    root,
    stampFile: resolve(e.CP_STATE_DIR, 'fswatcher', 'stamps'),
    ignoreFile: resolve(root, e.CP_IGNORE_FILE),
    debounceMs: e.CP_DEBOUNCE_MS,
    reportWaitMs: e.CP_REPORT_WAIT_MS,
    logPatterns: (e.CP_LOG_PATTERNS ?? '')
      .split(',')
      .map((p) => p.trim())
      .filter(Boolean),
  };
}
