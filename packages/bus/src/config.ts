import {
  defineEnv,
  envEnum,
  envIntType,
  envString,
  envText,
  InvalidEnvError,
  loadEnv,
} from '@computepods/protocol';
import { z } from 'zod';
import type { ConnectOptions } from './connect.js';

const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** How the connection and the logs are made (busSettings). */
const connectionEnv = defineEnv({
  NATS_URL: {
    schema: envString(),
    default: 'nats://127.0.0.1:4222',
    doc: 'NATS server(s), comma-separated',
  },
  NATS_CREDS: {
    schema: envText(),
    doc: "NATS credentials file (the role's; `up` gives each service its own)",
  },
  NATS_CA: { schema: envText(), doc: "TLS: the CA that signed the servers' certificates (file)" },
  NATS_CERT: {
    schema: envText(),
    doc: 'TLS: a client certificate (file), with NATS_KEY, when the server asks for one',
  },
  NATS_KEY: { schema: envText(), doc: "TLS: the client certificate's key (file)" },
  CP_LOG_LEVEL: {
    schema: envEnum(LEVELS).optional(),
    shown: '`LOG_LEVEL`, else `info`',
    doc: 'pino level; logs are JSON on stderr, pretty on a terminal',
  },
  LOG_LEVEL: { schema: envEnum(LEVELS), default: 'info', doc: 'CP_LOG_LEVEL when that is unset' },
  CP_LOG_FORMAT: {
    schema: envEnum(['json', 'pretty']).optional(),
    shown: 'pretty on a terminal',
    doc: '`json`: JSON log lines on stderr even on a terminal',
  },
  CP_REPLICAS: {
    schema: envIntType({ max: 5 }),
    default: '1',
    doc: 'JetStream replicas for streams and buckets (3 on a cluster)',
  },
});

const DAY = 24 * 3600_000;

/** Task logs (stream `cp_<p>_tasklogs`) are kept a day unless CP_TASK_LOG_MAX_AGE_S says otherwise. */
export const TASK_LOG_MAX_AGE_MS = DAY;

/**
 * Task records (KV `cp_<p>_tasks`, a key per task) and build results (KV `cp_<p>_builds`, a key
 * per build): each key is kept this long after it was last written, then the server drops it.
 * Without a bound both grow by a key per build for ever, on disk and in nats-server's memory (its
 * per-subject index costs ~150 bytes a key). What an expired key costs is at most a rebuild:
 * - a build result is the chef's and MajorDomo's result cache: without it the build runs again;
 * - a task record is what keeps a task id from running twice (the runner's first write is a
 *   create) and what a restarted runner adopts. A record is rewritten only when its task
 *   changes state, so the age must exceed the longest a task may stay queued or running:
 *   the default is twice the chef's own limit (CP_CHEF_TASK_WAIT_MS, 7 days);
 * - it must exceed the task and build queues' duplicate windows (10 minutes), or a task sent
 *   again within the window after its record went would be dropped as a duplicate and never run.
 */
export const RECORD_MAX_AGE_MS = 14 * DAY;
export const RECORD_MIN_AGE_MS = 15 * 60_000;

/**
 * Files changed and build events (results, task states, cancels): MajorDomo consumes both as
 * they come, so they are history once read. A MajorDomo down longer than this misses the file
 * changes published meanwhile.
 */
export const EVENT_MAX_AGE_MS = 7 * DAY;

/** A number of seconds (at least `minS`, above 0 in any case; fractions allowed) as milliseconds. */
const seconds = (what: string, minS = 0) =>
  z
    .string()
    .trim()
    .transform((raw, ctx) => {
      const s = Number(raw);
      if (!Number.isFinite(s) || s <= 0 || s < minS) {
        ctx.addIssue({
          code: 'custom',
          message: `must be ${minS > 0 ? `at least ${minS}` : 'a positive number of'} seconds (${what})`,
        });
        return z.NEVER;
      }
      return Math.max(1, Math.round(s * 1000));
    });

/** How long a project's history is kept (provisioning and every service's stream setup). */
const retentionEnv = defineEnv({
  CP_RECORD_MAX_AGE_S: {
    schema: seconds('how long task records and build results are kept', RECORD_MIN_AGE_MS / 1000),
    default: String(RECORD_MAX_AGE_MS / 1000),
    doc: 'how long a task record (KV `cp_<p>_tasks`) or build result (KV `cp_<p>_builds`) is kept after its last write; at least 900',
  },
  CP_EVENT_MAX_AGE_S: {
    schema: seconds('how long file changes and build events are kept'),
    default: String(EVENT_MAX_AGE_MS / 1000),
    doc: 'how long file changes and build events (streams `cp_<p>_files`, `cp_<p>_events`) are kept',
  },
  CP_TASK_LOG_MAX_AGE_S: {
    schema: seconds('how long task logs are kept'),
    default: String(TASK_LOG_MAX_AGE_MS / 1000),
    doc: 'how long task logs are kept on NATS (stream `cp_<p>_tasklogs`)',
  },
});

/** V8's own `--interrupt-budget` on Node 20 (`node --v8-options`), in bytes of bytecode. */
export const V8_OWN_INTERRUPT_BUDGET = 67_584;

/**
 * How eagerly V8 optimises a service's code. Between two tier-up checks a function runs this
 * many bytes of bytecode; after a few checks (V8's `--ticks-before-optimization`) it is compiled
 * by TurboFan on a background thread. Default 0: V8's own. A larger budget trades: it saves the
 * compiling of code that runs only some thousand times in a process's life, and runs hotter code
 * unoptimised for longer. Measured at 16× (2026-12-06, alternated with V8's own, same code):
 * - `pnpm bench runner`, a stream of 6,000 tasks: the runner's CPU 1.06 ms a task against 0.45,
 *   517 tasks/s against 944 (it had not caught up after 12,000 tasks);
 * - `pnpm bench scale`, MajorDomo's restore at 100k artefacts: 2,391 ms against ~1,490;
 * - `pnpm bench cbuild` (201 compiles on a fresh stack): the services' CPU on the clean build
 *   3,850 / 2,820 ms against 3,500 / 3,030, no clear difference (an earlier window, with the
 *   bench's own status polls loading MajorDomo, had measured −21 %).
 */
const v8Env = defineEnv({
  CP_V8_INTERRUPT_BUDGET: {
    schema: envIntType({ min: 0, max: 1 << 30, unit: 'bytes of bytecode' }),
    default: '0',
    doc: `bytes of bytecode a function runs between V8's tier-up checks in a service (\`--interrupt-budget\`, set by startService first thing; V8's own is ${V8_OWN_INTERRUPT_BUDGET}); 0: V8's own. Larger saves compiling code that runs only some thousand times and runs hotter code unoptimised longer: at 16× the runner's CPU per task on a stream of tasks more than doubled (packages/bus config.ts)`,
  },
});

/**
 * What every program connecting to NATS reads (services, cpctrl, inotify2nats): declared here
 * once, listed in this package's README (pnpm env-docs), read nowhere else.
 */
export const busEnv = defineEnv({ ...connectionEnv, ...retentionEnv, ...v8Env });

export interface Retention {
  /** KV tasks and builds: CP_RECORD_MAX_AGE_S, default RECORD_MAX_AGE_MS (14 days). */
  readonly recordMaxAgeMs: number;
  /** Streams files and events: CP_EVENT_MAX_AGE_S, default EVENT_MAX_AGE_MS (7 days). */
  readonly eventMaxAgeMs: number;
  /** Stream tasklogs: CP_TASK_LOG_MAX_AGE_S, default TASK_LOG_MAX_AGE_MS (a day). */
  readonly taskLogMaxAgeMs: number;
}

/** How long a project's history is kept, from the environment (a bad value throws, naming it). */
export function retentionFromEnv(env: NodeJS.ProcessEnv = process.env): Retention {
  const e = loadEnv(retentionEnv, env);
  return {
    recordMaxAgeMs: e.CP_RECORD_MAX_AGE_S,
    eventMaxAgeMs: e.CP_EVENT_MAX_AGE_S,
    taskLogMaxAgeMs: e.CP_TASK_LOG_MAX_AGE_S,
  };
}

/** How long task logs are kept: CP_TASK_LOG_MAX_AGE_S (seconds), default one day. */
export function taskLogMaxAgeMs(env: NodeJS.ProcessEnv = process.env): number {
  const { CP_TASK_LOG_MAX_AGE_S } = retentionEnv;
  return loadEnv({ CP_TASK_LOG_MAX_AGE_S }, env).CP_TASK_LOG_MAX_AGE_S;
}

export interface BusSettings {
  readonly servers: string;
  readonly credsFile: string | undefined;
  readonly tls: ConnectOptions['tls'];
  readonly logLevel: (typeof LEVELS)[number];
  /** JSON lines even on a terminal. */
  readonly json: boolean;
  readonly replicas: number;
}

/** The connection's and logs' settings; a bad value throws InvalidEnvError naming it. */
export function busSettings(env: NodeJS.ProcessEnv = process.env): BusSettings {
  const e = loadEnv(connectionEnv, env);
  if (Boolean(e.NATS_CERT) !== Boolean(e.NATS_KEY))
    throw new InvalidEnvError(
      ['NATS_CERT', 'NATS_KEY'],
      ['NATS_CERT and NATS_KEY go together: set both for a client certificate, or neither'],
    );
  const tls =
    e.NATS_CA || e.NATS_CERT || e.NATS_KEY
      ? {
          ...(e.NATS_CA ? { caFile: e.NATS_CA } : {}),
          ...(e.NATS_CERT ? { certFile: e.NATS_CERT } : {}),
          ...(e.NATS_KEY ? { keyFile: e.NATS_KEY } : {}),
        }
      : undefined;
  return {
    servers: e.NATS_URL,
    credsFile: e.NATS_CREDS,
    tls,
    logLevel: e.CP_LOG_LEVEL ?? e.LOG_LEVEL,
    json: e.CP_LOG_FORMAT === 'json',
    replicas: e.CP_REPLICAS,
  };
}

/** TLS settings from the environment: NATS_CA, NATS_CERT and NATS_KEY (files). */
export function tlsFromEnv(env: NodeJS.ProcessEnv = process.env): ConnectOptions['tls'] {
  return busSettings(env).tls;
}

/** CP_V8_INTERRUPT_BUDGET (v8-tuning.ts sets it at a service's start); a bad value throws. */
export function v8InterruptBudget(env: NodeJS.ProcessEnv = process.env): number {
  return loadEnv(v8Env, env).CP_V8_INTERRUPT_BUDGET;
}

/** Replicas for streams and buckets: 1 on one server, 3 on a cluster (CP_REPLICAS). */
export function defaultReplicas(env: NodeJS.ProcessEnv = process.env): number {
  return busSettings(env).replicas;
}
