import { join, resolve } from 'node:path';
import { checkProject } from '@computepods/protocol';

export interface MajorDomoConfig {
  readonly project: string;
  /** Builds dispatched at once (the ready set is cut to this). */
  readonly parallelBuilds: number;
  /** Passes a cycle may take before it is reported as not converging. */
  readonly passLimit: number;
  /** REST/SSE API: CP_HTTP_HOST, CP_HTTP_PORT (0: a free port). */
  readonly httpHost: string;
  readonly httpPort: number;
  /** The bootstrap admin token (CP_API_TOKEN); generated and written to the state dir if unset. */
  readonly apiToken: string | undefined;
  readonly stateDir: string;
  /** Host headers the API answers besides loopback and CP_HTTP_HOST (CP_HTTP_ALLOWED_HOSTS). */
  readonly httpAllowedHosts: readonly string[];
  /** Server-sent-event streams open at once (CP_HTTP_MAX_SSE). */
  readonly maxSse: number;
  /** The only directories task logs are read from (CP_LOG_ROOTS; default the local runner's). */
  readonly logRoots: readonly string[];
}

const list = (value: string | undefined): string[] =>
  (value ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);

function int(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1)
    throw new Error(`${name} must be a positive integer, got ${JSON.stringify(value)}`);
  return n;
}

export function majorDomoConfig(env: NodeJS.ProcessEnv = process.env): MajorDomoConfig {
  return {
    project: checkProject(env.CP_PROJECT ?? 'demo'),
    parallelBuilds: int('CP_PARALLEL_BUILDS', env.CP_PARALLEL_BUILDS, 64),
    passLimit: int('CP_PASS_LIMIT', env.CP_PASS_LIMIT, 5),
    httpHost: env.CP_HTTP_HOST ?? '127.0.0.1',
    httpPort: env.CP_HTTP_PORT === '0' ? 0 : int('CP_HTTP_PORT', env.CP_HTTP_PORT, 8080),
    apiToken: env.CP_API_TOKEN || undefined,
    stateDir: resolve(env.CP_STATE_DIR ?? '.state', 'majordomo'),
    httpAllowedHosts: list(env.CP_HTTP_ALLOWED_HOSTS),
    maxSse: int('CP_HTTP_MAX_SSE', env.CP_HTTP_MAX_SSE, 32),
    // The local runner's job folders (services/runner: <CP_STATE_DIR>/runner/tasks/<taskId>).
    logRoots: (env.CP_LOG_ROOTS?.trim()
      ? list(env.CP_LOG_ROOTS)
      : [join(env.CP_STATE_DIR ?? '.state', 'runner', 'tasks')]
    ).map((p) => resolve(p)),
  };
}
