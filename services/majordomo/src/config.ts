import { availableParallelism, hostname } from 'node:os';
import { join, resolve } from 'node:path';
import {
  checkProject,
  defineEnv,
  envFlag,
  envIntType,
  envList,
  envString,
  envText,
  InvalidEnvError,
  loadEnv,
  MAX_GROUP_STEPS,
  projectEnv,
  TIMER_MS,
} from '@computepods/protocol';
import { z } from 'zod';
import type { LeaseConfig } from './lease.js';
import { MIN_DEAD_S } from './replica-census.js';

/** Every variable MajorDomo reads: its README's table is written from these (pnpm env-docs). */
export const majorDomoEnv = defineEnv({
  ...projectEnv,
  CP_STATE_DIR: {
    schema: envString(),
    default: '.state',
    doc: 'the generated API token lives in `$CP_STATE_DIR/majordomo/api-token`',
  },
  CP_PARALLEL_BUILDS: { schema: envIntType(), default: '64', doc: 'builds dispatched at once' },
  CP_GROUP_BUILDS: {
    schema: envIntType({ min: 1, max: MAX_GROUP_STEPS, unit: 'steps' }),
    default: '16',
    doc: `at most this many ready steps of one rule go to its chef as one build (a group: one request, one task running their commands one after another, one result), when more are ready than CP_GROUP_SPREAD; 1: every step its own build. Not for a rule with projections, a cycle's steps or a forced rebuild; a group that fails is built again step by step (up to ${MAX_GROUP_STEPS})`,
  },
  CP_GROUP_SPREAD: {
    schema: envIntType({ min: 1, max: 100_000, unit: 'lanes' }).optional(),
    shown: 'the CPU count',
    doc: "the lanes a grouped rule's steps run on (a local resource's CP_PARALLEL): ready steps are packed into equal groups, as many as a multiple of it, so the lanes finish together",
  },
  CP_PASS_LIMIT: {
    schema: envIntType(),
    default: '5',
    doc: 'passes before a cycle is reported as not converging',
  },
  CP_HOW_TO_BUILD_MS: {
    schema: envIntType(TIMER_MS),
    default: '2000',
    doc: 'how long MajorDomo gathers "can build from" answers to a "how to build" question',
  },
  CP_CHEF_TIMEOUT_MS: {
    schema: envIntType(TIMER_MS),
    default: '15000',
    doc: 'a chef silent this long has its rules retired and its queued builds re-planned',
  },
  CP_CHEF_PING_MS: {
    schema: envIntType(TIMER_MS),
    default: '1000',
    doc: "how often each chef's `$SRV` identity is PINGed; 3 misses in a row retire it like a silent heartbeat",
  },
  CP_RUNNER_DEAD_S: {
    schema: envIntType({ min: MIN_DEAD_S, max: 24 * 3600, unit: 'seconds' }),
    default: '60',
    doc: `a runner id no process has answered \`$SRV.PING.runner\` for this long (at least ${MIN_DEAD_S}) has its unfinished tasks queued again (never started) or failed naming it`,
  },
  CP_CHEF_REPLICA_DEAD_S: {
    schema: envIntType({ min: MIN_DEAD_S, max: 3600, unit: 'seconds' }),
    default: '10',
    doc: `a chef process not answering \`$SRV.PING.chef\` this long (at least ${MIN_DEAD_S}) has the build requests it held handed to its replicas`,
  },
  CP_CANCEL_WAIT_MS: {
    schema: envIntType(TIMER_MS),
    default: '30000',
    doc: "how long a step's next build waits for a chef to report the end of the step's build cancelled before it (another replica may still be killing its task); after it, the next build goes all the same",
  },
  CP_HTTP_HOST: {
    schema: envString(),
    default: '127.0.0.1',
    doc: 'REST API + server-sent events (OpenAPI at `/openapi.json`): the address listened on',
  },
  CP_HTTP_PORT: {
    schema: envIntType({ min: 0, max: 65_535 }),
    default: '8080',
    doc: 'its port (0: a free one)',
  },
  CP_HTTP_ALLOWED_HOSTS: {
    schema: envList(),
    shown: 'none',
    doc: "more `Host` headers the API answers, comma-separated (`name` on the API's port, or `name:port`); besides these only `127.0.0.1`, `localhost`, `[::1]` and `CP_HTTP_HOST` on its port are answered, anything else gets 421 (DNS rebinding)",
  },
  CP_HTTP_MAX_SSE: {
    schema: envIntType(),
    default: '32',
    doc: '`/api/events` streams open at once; the next gets 503',
  },
  CP_API_TOKEN: {
    schema: envText(),
    secret: true,
    shown: 'generated',
    doc: 'the bootstrap token (at least 16 characters): user `admin`, role admin; generated once into `$CP_STATE_DIR/majordomo/api-token`, mode 0600, if unset',
  },
  CP_LOG_ROOTS: {
    schema: envList(),
    shown: '`$CP_STATE_DIR/runner/tasks`',
    doc: "comma-separated folders an ended task's log file may be read from when NATS has none of it (the runners' job folders); a file elsewhere is refused (403)",
  },
  CP_UI_PROJECTS: {
    schema: envText(),
    shown: 'none',
    doc: "other projects' pages for the web page's project switcher, `name=URL` pairs separated by commas (`thesis=http://127.0.0.1:8081/`)",
  },
  CP_MAJORDOMO_HA: {
    schema: envFlag(),
    shown: 'off',
    doc: "`1`: this MajorDomo is one of its project's leader and standbys; every MajorDomo of the project must set it",
  },
  CP_MAJORDOMO_ID: {
    schema: z
      .string()
      .regex(/^[A-Za-z0-9._:-]{1,200}$/, {
        error: 'must be 1-200 letters, digits, ".", "_", ":" or "-"',
      })
      .optional(),
    shown: '`<host>-<pid>`',
    doc: "this MajorDomo's id in the lease and in its build requests; unique per process",
  },
  CP_LEASE_MS: {
    schema: envIntType(TIMER_MS),
    default: '3000',
    doc: 'standby mode: a leader unheard of this long is replaced',
  },
  CP_LEASE_RENEW_MS: {
    schema: envIntType(TIMER_MS),
    default: '1000',
    doc: 'standby mode: how often the leader renews (at most half of `CP_LEASE_MS`)',
  },
  CP_STANDBY_FOLLOW_MS: {
    schema: envIntType({ ...TIMER_MS, min: 10 }),
    default: '1000',
    doc: 'standby mode: how often a standby reads the keys written since its graph (loaded from the snapshot) and applies them, so a takeover reads only the last few',
  },
  CP_SNAPSHOT_EVERY_S: {
    schema: envIntType({ min: 1, max: 24 * 3600, unit: 'seconds' }),
    default: '300',
    doc: 'how often MajorDomo checks whether its graph snapshot (a restart reads it, then the KV keys written since) should be taken again',
  },
  CP_SNAPSHOT_TAIL: {
    schema: envIntType({ min: 1, max: 100_000_000, unit: 'writes' }),
    default: '20000',
    doc: 'writes to the artefacts and traces buckets since the snapshot past which it is taken again (when idle)',
  },
  CP_HEAP_GROWING_PERCENT: {
    schema: envIntType({ min: 0, max: 1000, unit: 'percent' }),
    default: '25',
    doc: "how far V8 lets MajorDomo's heap grow past what a full collection left before the next (`--heap-growing-percent`; V8's own until restored, then this with one full collection: heap-growth.ts; a standby's from its start, a full restore's as it begins); 0: V8's own (a growth factor of up to 4 on a host with much memory). At 100k artefacts (pnpm bench scale) the resident peak was 397 MiB at 25, 417 at 50, 498 with V8's own; a full restore took 16 % more CPU at 25",
  },
});

export interface MajorDomoConfig {
  readonly project: string;
  /** Builds dispatched at once (the ready set is cut to this). */
  readonly parallelBuilds: number;
  /** Ready steps of one rule packed into one build at most (CP_GROUP_BUILDS; 1: no groups). */
  readonly groupMax: number;
  /** The lanes groups are spread over (CP_GROUP_SPREAD; group-packing.ts). */
  readonly groupSpread: number;
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
  /** How long "can build from" answers are gathered (CP_HOW_TO_BUILD_MS). */
  readonly howToBuildMs: number;
  /** A chef silent this long is retired (CP_CHEF_TIMEOUT_MS); its $SRV PINGed this often (CP_CHEF_PING_MS). */
  readonly chefTimeoutMs: number;
  readonly chefPingMs: number;
  /** Replica liveness (runner-liveness.ts, chef-replicas.ts): CP_RUNNER_DEAD_S, CP_CHEF_REPLICA_DEAD_S. */
  readonly runnerDeadMs: number;
  readonly chefReplicaDeadMs: number;
  /** The longest a step's next build waits for the end of its cancelled one (CP_CANCEL_WAIT_MS). */
  readonly cancelWaitMs: number;
  /** Leader and standbys (lease.ts). */
  readonly lease: LeaseConfig;
  /** Graph snapshot compaction (snapshot-compaction.ts): CP_SNAPSHOT_EVERY_S, CP_SNAPSHOT_TAIL. */
  readonly snapshotEveryMs: number;
  readonly snapshotTail: number;
  /** A standby's rounds of following the buckets (warm-standby.ts). */
  readonly standbyFollowMs: number;
  /** V8's heap growing percent (CP_HEAP_GROWING_PERCENT; 0: V8's own), set by main.ts. */
  readonly heapGrowingPercent: number;
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
  return envList()
    .parse(value)
    .map((item, i) => {
      const eq = item.indexOf('=');
      const parsed = UiProject.safeParse({
        name: eq < 0 ? item : item.slice(0, eq).trim(),
        url: eq < 0 ? '' : item.slice(eq + 1).trim(),
      });
      if (!parsed.success)
        throw new InvalidEnvError(
          ['CP_UI_PROJECTS'],
          [
            `CP_UI_PROJECTS item ${i + 1} (${JSON.stringify(item)}): ${parsed.error.issues
              .map((x) => `${x.path.join('.')}: ${x.message}`)
              .join(
                '; ',
              )}; write name=URL pairs separated by commas, e.g. thesis=http://127.0.0.1:8081/`,
          ],
        );
      if (parsed.data.name === self)
        throw new InvalidEnvError(
          ['CP_UI_PROJECTS'],
          [`CP_UI_PROJECTS names this MajorDomo's own project ${self}; list the others`],
        );
      return parsed.data;
    });
}

/** Settings from the environment (majorDomoEnv); a bad value throws, naming the variable. */
export function majorDomoConfig(env: NodeJS.ProcessEnv = process.env): MajorDomoConfig {
  const e = loadEnv(majorDomoEnv, env);
  const renewMs = e.CP_LEASE_RENEW_MS;
  const leaseMs = e.CP_LEASE_MS;
  if (renewMs * 2 > leaseMs)
    throw new InvalidEnvError(
      ['CP_LEASE_RENEW_MS', 'CP_LEASE_MS'],
      [
        `CP_LEASE_RENEW_MS (${renewMs}) must be at most half of CP_LEASE_MS (${leaseMs}): a leader renews at least twice per lease`,
      ],
    );
  return {
    project: e.CP_PROJECT,
    parallelBuilds: e.CP_PARALLEL_BUILDS,
    groupMax: e.CP_GROUP_BUILDS,
    groupSpread: e.CP_GROUP_SPREAD ?? availableParallelism(),
    passLimit: e.CP_PASS_LIMIT,
    httpHost: e.CP_HTTP_HOST,
    httpPort: e.CP_HTTP_PORT,
    apiToken: e.CP_API_TOKEN,
    stateDir: resolve(e.CP_STATE_DIR, 'majordomo'),
    httpAllowedHosts: e.CP_HTTP_ALLOWED_HOSTS,
    maxSse: e.CP_HTTP_MAX_SSE,
    // The local runner's job folders (services/runner: <CP_STATE_DIR>/runner/tasks/<taskId>).
    logRoots: (e.CP_LOG_ROOTS.length
      ? e.CP_LOG_ROOTS
      : [join(e.CP_STATE_DIR, 'runner', 'tasks')]
    ).map((p) => resolve(p)),
    uiProjects: uiProjects(e.CP_UI_PROJECTS, e.CP_PROJECT),
    howToBuildMs: e.CP_HOW_TO_BUILD_MS,
    chefTimeoutMs: e.CP_CHEF_TIMEOUT_MS,
    chefPingMs: e.CP_CHEF_PING_MS,
    runnerDeadMs: e.CP_RUNNER_DEAD_S * 1000,
    chefReplicaDeadMs: e.CP_CHEF_REPLICA_DEAD_S * 1000,
    cancelWaitMs: e.CP_CANCEL_WAIT_MS,
    lease: {
      enabled: e.CP_MAJORDOMO_HA,
      id: e.CP_MAJORDOMO_ID ?? `${hostname()}-${process.pid}`,
      leaseMs,
      renewMs,
      pollMs: Math.max(25, Math.floor(renewMs / 4)),
    },
    snapshotEveryMs: e.CP_SNAPSHOT_EVERY_S * 1000,
    snapshotTail: e.CP_SNAPSHOT_TAIL,
    standbyFollowMs: e.CP_STANDBY_FOLLOW_MS,
    heapGrowingPercent: e.CP_HEAP_GROWING_PERCENT,
  };
}
