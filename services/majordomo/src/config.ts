import { join, resolve } from 'node:path';
import { checkProject, envInt } from '@computepods/protocol';
import { z } from 'zod';

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
  /** Other projects' pages the web page's switcher offers (CP_UI_PROJECTS). */
  readonly uiProjects: readonly UiProject[];
}

export const UiProject = z.object({
  name: z.string().refine(
    (n) => {
      try {
        checkProject(n);
        return true;
      } catch {
        return false;
      }
    },
    { message: 'not a project name (lower-case letters, digits, "-" or "_")' },
  ),
  url: z.url({ protocol: /^https?$/, error: 'not an http(s) URL' }),
});
export type UiProject = z.infer<typeof UiProject>;

/**
 * CP_UI_PROJECTS: `name=URL,name=URL`, the pages of the other projects a person may switch to.
 * Each project is served by its own MajorDomo, in its own NATS account, which cannot read the
 * lab's registry: the operator (or `up`) says where the others are.
 */
export function uiProjects(value: string | undefined, self: string): UiProject[] {
  return list(value).map((item, i) => {
    const eq = item.indexOf('=');
    const parsed = UiProject.safeParse({
      name: eq < 0 ? item : item.slice(0, eq).trim(),
      url: eq < 0 ? '' : item.slice(eq + 1).trim(),
    });
    if (!parsed.success)
      throw new Error(
        `CP_UI_PROJECTS item ${i + 1} (${JSON.stringify(item)}): ${parsed.error.issues
          .map((x) => `${x.path.join('.')}: ${x.message}`)
          .join(
            '; ',
          )}; write name=URL pairs separated by commas, e.g. thesis=http://127.0.0.1:8081/`,
      );
    if (parsed.data.name === self)
      throw new Error(`CP_UI_PROJECTS names this MajorDomo's own project ${self}; list the others`);
    return parsed.data;
  });
}

const list = (value: string | undefined): string[] =>
  (value ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);

export function majorDomoConfig(env: NodeJS.ProcessEnv = process.env): MajorDomoConfig {
  return {
    project: checkProject(env.CP_PROJECT ?? 'demo'),
    parallelBuilds: envInt(env, 'CP_PARALLEL_BUILDS', 64),
    passLimit: envInt(env, 'CP_PASS_LIMIT', 5),
    httpHost: env.CP_HTTP_HOST ?? '127.0.0.1',
    httpPort: envInt(env, 'CP_HTTP_PORT', 8080, { min: 0, max: 65_535 }),
    apiToken: env.CP_API_TOKEN || undefined,
    stateDir: resolve(env.CP_STATE_DIR ?? '.state', 'majordomo'),
    httpAllowedHosts: list(env.CP_HTTP_ALLOWED_HOSTS),
    maxSse: envInt(env, 'CP_HTTP_MAX_SSE', 32),
    // The local runner's job folders (services/runner: <CP_STATE_DIR>/runner/tasks/<taskId>).
    logRoots: (env.CP_LOG_ROOTS?.trim()
      ? list(env.CP_LOG_ROOTS)
      : [join(env.CP_STATE_DIR ?? '.state', 'runner', 'tasks')]
    ).map((p) => resolve(p)),
    uiProjects: uiProjects(env.CP_UI_PROJECTS, checkProject(env.CP_PROJECT ?? 'demo')),
  };
}
