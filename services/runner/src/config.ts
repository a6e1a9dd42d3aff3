import { cpus, hostname } from 'node:os';
import { isAbsolute, resolve } from 'node:path';
import { busSettings } from '@computepods/bus';
import type { KubernetesStagingOptions } from '@computepods/executors';
import {
  defineEnv,
  type EnvOf,
  envIntType,
  envName,
  envString,
  envText,
  InvalidEnvError,
  LOG_CHUNK_MAX_BYTES,
  loadEnv,
  projectEnv,
} from '@computepods/protocol';
import { TASK_LOG_DEFAULTS, type TaskLogLimits } from './task-log-publisher.js';

const SECONDS = { min: 0, max: 10 * 365 * 24 * 3600, unit: 'seconds' } as const;

/** Every variable the runner reads: its README's table is written from these (pnpm env-docs). */
export const runnerEnv = defineEnv({
  ...projectEnv,
  CP_RESOURCE: {
    schema: envName(),
    default: 'local',
    doc: "resource id (with a queue record: the queue's resource, whatever this says)",
  },
  CP_QUEUE: {
    schema: envName().optional(),
    shown: '`CP_RESOURCE`',
    doc: "the project's queue this runner serves (`cp.<project>.tasks.<queue>`); its resource and the one profile it may run tasks under come from the queue's record",
  },
  CP_RESOURCE_FILE: {
    schema: envText(),
    doc: 'resource JSON (Fractal shape); else KV `cp_resources[CP_RESOURCE]`; `local` works without one',
  },
  CP_PROFILE: {
    schema: envText(),
    doc: 'profile for SLURM and Kubernetes resources (KV `cp_profiles[CP_PROFILE]`)',
  },
  CP_PROFILE_FILE: { schema: envText(), doc: 'the profile as a JSON file instead' },
  CP_RUNNER_ID: {
    schema: envText(),
    shown: 'host-queue',
    doc: 'stable id: a restarted runner adopts the unfinished records written with it',
  },
  CP_STATE_DIR: {
    schema: envString(),
    default: '.state',
    doc: 'task folders of the default local resource live in `$CP_STATE_DIR/runner`',
  },
  CP_PARALLEL: {
    schema: envIntType().optional(),
    shown: 'the CPU count',
    doc: 'tasks at once for the default local resource',
  },
  CP_RUNNER_INTAKE: {
    schema: envIntType(),
    default: '256',
    doc: "tasks a runner takes from its queue at once (recorded, then run as its executor's lanes allow); a pilot worker's is its CPU count, so tasks spread over the pilots",
  },
  CP_RUNNER_ACK_WAIT_MS: {
    schema: envIntType(),
    default: '30000',
    doc: 'how long a pulled task may stay unacknowledged before JetStream hands it out again',
  },
  CP_WORKSPACE: {
    schema: envText(),
    doc: 'the workspace: the default workspace root',
  },
  CP_WORKSPACE_ROOTS: {
    schema: envText(),
    shown: '`CP_WORKSPACE`',
    doc: "colon-separated absolute folders a task's `cwd` must be in (symlinks resolved); neither set: every task is refused",
  },
  CP_PILOT_PROFILE: {
    schema: envText(),
    doc: "pilot workers only: the profile of the runner that started them, checked against each task's",
  },
  CP_JOB_KEEP_S: {
    schema: envIntType(SECONDS),
    default: '600',
    doc: "SLURM: a job folder whose tasks all exited 0 is removed this long after its job ended (0: at the next sweep once its tasks' logs are published); so is a pilot's folder once the pilot left by itself, every task it ran exited 0 and its files came back. Local: a task folder, this long after the task exited 0. Kubernetes: a finished task's Job (and pods) and its log copy and stage folder in jobs_local_dir, this long after its end was recorded",
  },
  CP_JOB_KEEP_FAILED_S: {
    schema: envIntType(SECONDS),
    default: String(7 * 24 * 3600),
    doc: "SLURM: one with a failed, lost or skipped task, or whose job never ended and SLURM no longer knows, is kept this long (7 days); so is a pilot's folder after a crash, a failed task or a stage folder left (its NATS credentials go at the first sweep after the pilot ended). Local: a task folder after another exit code, or without one. Kubernetes: a failed task's Job and files; a Job that ended without ComputePods' mark, and the files of a Job that is gone (killed, deleted outside)",
  },
  CP_TASK_LOG_MAX_BYTES: {
    schema: envIntType(),
    default: String(TASK_LOG_DEFAULTS.maxBytes),
    doc: "bytes of each task's stdout (and of its stderr) published; then a `truncated` marker",
  },
  CP_TASK_LOG_CHUNK_BYTES: {
    schema: envIntType({ max: LOG_CHUNK_MAX_BYTES }),
    default: String(TASK_LOG_DEFAULTS.chunkBytes),
    doc: 'the largest piece of a task log (one NATS message; at most 256 KiB)',
  },
  CP_TASK_LOG_POLL_MS: {
    schema: envIntType().optional(),
    shown: '250 local, 1000 SLURM',
    doc: "how often a running task's output files are looked at (a log that already sent many pieces is looked at less often)",
  },
  CP_TASK_STAGES_FILE: {
    schema: envText(),
    doc: "local resource, for measuring: each task's way through the runner (intake, record writes, lane, spawn, exit, end), one JSON line per task appended to this file when its end is recorded (pnpm bench cbuild reads it); unset: not measured",
  },
  CP_SPAWNER_PID_HOLD_MS: {
    schema: envIntType({ max: 3_600_000 }).optional(),
    shown: '100',
    doc: "local resource: how long a started task's pid waits for its exit, so that a short task's start and end are recorded in one write; a queued task started as a slot frees stays recorded `submitted` meanwhile (tests lengthen it to hold a task there)",
  },
  CP_K8S_STAGE_LISTEN: {
    schema: envText(),
    doc: "Kubernetes: `host:port` the runner's stage server listens on (pods fetch declared inputs from it and send outputs back); unset: tasks with declared files need the resource's `workspace_volume`",
  },
  CP_K8S_STAGE_URL: {
    schema: envText(),
    shown: '`https://` + `CP_K8S_STAGE_LISTEN`',
    doc: 'Kubernetes: the stage server as pods reach it (a Service in front of the runner, say)',
  },
  CP_K8S_STAGE_TLS_CERT: {
    schema: envText(),
    doc: "Kubernetes: the stage server's certificate chain (PEM file); required with `CP_K8S_STAGE_LISTEN`",
  },
  CP_K8S_STAGE_TLS_KEY: {
    schema: envText(),
    doc: "Kubernetes: the stage server's private key (PEM file); required with `CP_K8S_STAGE_LISTEN`",
  },
  CP_K8S_STAGE_CA: {
    schema: envText(),
    shown: '`CP_K8S_STAGE_TLS_CERT`',
    doc: 'Kubernetes: the CA certificate (PEM file) pods check the stage server with',
  },
});

/** A pilot worker's own variables (pilot-worker.ts), set by the pilot manager. */
export const pilotWorkerEnv = defineEnv({
  CP_PILOT_IDLE_TIMEOUT_S: {
    schema: envIntType({ unit: 'seconds' }),
    default: '60',
    doc: 'the worker stops (ending its allocation) once no task has been in its hands this long',
  },
  CP_PILOT_STAGE_DIR: {
    schema: envText(),
    doc: "where the worker's tasks with declared files run, staged by the runner that started it (pilot-staging.ts)",
  },
  CP_PILOT_MAX_ACK_PENDING: {
    schema: envIntType({ min: 0 }),
    default: '0',
    doc: "unacknowledged tasks over all the queue's pilots (0: intake × 4)",
  },
});

export interface RunnerConfig {
  readonly project: string;
  /** The resource id (with a queue record: the queue's resource, whatever CP_RESOURCE says). */
  readonly resource: string;
  /**
   * The project's queue this runner serves (CP_QUEUE, default CP_RESOURCE): it takes tasks from
   * cp.<project>.tasks.<queue>, and its resource and profile from the queue's record.
   */
  readonly queue: string;
  /**
   * Written into every record; a restarted runner adopts the unfinished records that carry
   * its id, so it must stay the same across restarts (default: host name + resource).
   */
  readonly runnerId: string;
  readonly stateDir: string;
  /** Local resource without a configuration: tasks at once. */
  readonly parallel: number;
  /** The resource's JSON (Fractal shape); default: KV bucket cp_resources, key = resource id. */
  readonly resourceFile?: string | undefined;
  /** The profile id (KV bucket cp_profiles) for slurm_sudo / slurm_ssh resources. */
  readonly profile?: string | undefined;
  readonly profileFile?: string | undefined;
  /** Task submissions handled at once (each only records the task; running is separate). */
  readonly intake: number;
  /**
   * How long a pulled task message may go unacknowledged before JetStream delivers it again
   * (CP_RUNNER_ACK_WAIT_MS, default 30 s). A runner acknowledges a task once it is recorded and
   * tells JetStream it is still working meanwhile; a runner that starts hands out again at once
   * what a killed one had pulled (reclaim.ts), so this only bounds a runner that dies and is
   * never replaced.
   */
  readonly ackWaitMs?: number | undefined;
  /**
   * The only folders (and what is below them) a task's cwd may be in, checked with symlinks
   * resolved: CP_WORKSPACE_ROOTS (colon-separated absolute paths), else CP_WORKSPACE. Empty:
   * every task is refused, since a runner that would run anywhere is never the default.
   */
  readonly workspaceRoots: readonly string[];
  /**
   * Pilot workers only: the profile id of the runner that started them, checked against each
   * task's `profile` (the worker itself runs a local resource without a profile).
   */
  readonly pilotProfile?: string | undefined;
  /** The NATS URL its pilots connect to unless pilot_config names one (NATS_URL). */
  readonly natsUrl?: string | undefined;
  /** The runner's NATS credentials and the server's CA (NATS_CREDS, NATS_CA): its pilots get copies. */
  readonly natsCreds?: string | undefined;
  readonly natsCa?: string | undefined;
  /**
   * Local task folders, SLURM job folders and Kubernetes Jobs (with their local files): removed
   * CP_JOB_KEEP_S after their task or job ended with every task exiting 0 (default 600; 0
   * removes them at the next sweep once their logs are published), CP_JOB_KEEP_FAILED_S after
   * one that did not (default 604800, 7 days).
   */
  readonly jobKeep?: { readonly okMs: number; readonly failedMs: number } | undefined;
  /** What of each task's output is published, and how often it is looked at (task-log-publisher.ts). */
  readonly taskLogs?: TaskLogLimits | undefined;
  /** Kubernetes: the stage server (CP_K8S_STAGE_*); none: declared files need workspace_volume. */
  readonly kubernetesStaging?: KubernetesStagingOptions | undefined;
  /** CP_TASK_STAGES_FILE: where each local task's stage times go (task-stages.ts in executors). */
  readonly stagesFile?: string | undefined;
  /** CP_SPAWNER_PID_HOLD_MS: the local spawner's pid hold (spawner.py; default 100 ms). */
  readonly pidHoldMs?: number | undefined;
  /** The longest a task-state event waits for a write to share (task-events.ts; default 20 ms; tests). */
  readonly eventHoldMs?: number | undefined;
}

/** CP_K8S_STAGE_*: where the stage server listens, how pods reach it, its TLS files. */
export function kubernetesStagingOf(e: {
  readonly CP_K8S_STAGE_LISTEN?: string | undefined;
  readonly CP_K8S_STAGE_URL?: string | undefined;
  readonly CP_K8S_STAGE_TLS_CERT?: string | undefined;
  readonly CP_K8S_STAGE_TLS_KEY?: string | undefined;
  readonly CP_K8S_STAGE_CA?: string | undefined;
}): KubernetesStagingOptions | undefined {
  const listen = e.CP_K8S_STAGE_LISTEN?.trim();
  if (!listen) return undefined;
  const m = /^\[?([^\]]+?)\]?:(\d{1,5})$/.exec(listen);
  const [, host, port] = m ?? [];
  const issues: string[] = [];
  const fields: string[] = [];
  if (!host || port === undefined || Number(port) > 65_535) {
    fields.push('CP_K8S_STAGE_LISTEN');
    issues.push(
      `CP_K8S_STAGE_LISTEN must be host:port (0.0.0.0:8443, [::]:8443), got ${JSON.stringify(listen)}`,
    );
  }
  for (const name of ['CP_K8S_STAGE_TLS_CERT', 'CP_K8S_STAGE_TLS_KEY'] as const)
    if (!e[name]) {
      fields.push(name);
      issues.push(
        `${name} is required with CP_K8S_STAGE_LISTEN: the stage server speaks only HTTPS`,
      );
    }
  const url = e.CP_K8S_STAGE_URL;
  if (url !== undefined && !/^https:\/\/[^\s/]+(\/[^\s]*)?$/.test(url)) {
    fields.push('CP_K8S_STAGE_URL');
    issues.push(`CP_K8S_STAGE_URL must be an https:// URL, got ${JSON.stringify(url)}`);
  }
  if (issues.length || !host || !e.CP_K8S_STAGE_TLS_CERT || !e.CP_K8S_STAGE_TLS_KEY)
    throw new InvalidEnvError(fields, issues);
  return {
    host,
    port: Number(port),
    url,
    certFile: resolve(e.CP_K8S_STAGE_TLS_CERT),
    keyFile: resolve(e.CP_K8S_STAGE_TLS_KEY),
    caFile: e.CP_K8S_STAGE_CA ? resolve(e.CP_K8S_STAGE_CA) : undefined,
  };
}

const CONTROL_CHARS = /[\u0000-\u001f\u007f]/;

/**
 * CP_WORKSPACE_ROOTS as absolute paths; else CP_WORKSPACE (made absolute, as the chef does);
 * else none. A relative or odd entry in CP_WORKSPACE_ROOTS stops the runner with the fix.
 */
export function workspaceRootsOf(env: {
  readonly CP_WORKSPACE_ROOTS?: string | undefined;
  readonly CP_WORKSPACE?: string | undefined;
}): string[] {
  const list = env.CP_WORKSPACE_ROOTS?.trim();
  if (!list) return env.CP_WORKSPACE ? [resolve(env.CP_WORKSPACE)] : [];
  return list.split(':').map((root) => {
    if (!isAbsolute(root) || CONTROL_CHARS.test(root))
      throw new InvalidEnvError(
        ['CP_WORKSPACE_ROOTS'],
        [
          `CP_WORKSPACE_ROOTS must be absolute paths separated by ":", got ${JSON.stringify(root)} in ${JSON.stringify(list)}; write it as /path/one:/path/two`,
        ],
      );
    return resolve(root);
  });
}

/** Every setting comes from the environment (runnerEnv; NATS_* from the bus's). */
export function runnerConfig(env: NodeJS.ProcessEnv = process.env): RunnerConfig {
  return runnerConfigOf(loadEnv(runnerEnv, env), busSettings(env));
}

function runnerConfigOf(
  e: EnvOf<typeof runnerEnv>,
  nats: ReturnType<typeof busSettings>,
): RunnerConfig {
  const queue = e.CP_QUEUE ?? e.CP_RESOURCE;
  return {
    project: e.CP_PROJECT,
    resource: e.CP_RESOURCE,
    queue,
    runnerId: e.CP_RUNNER_ID ?? `${hostname()}-${queue}`,
    stateDir: resolve(e.CP_STATE_DIR, 'runner'),
    parallel: e.CP_PARALLEL ?? cpus().length,
    resourceFile: e.CP_RESOURCE_FILE,
    profile: e.CP_PROFILE,
    profileFile: e.CP_PROFILE_FILE,
    intake: e.CP_RUNNER_INTAKE,
    ackWaitMs: e.CP_RUNNER_ACK_WAIT_MS,
    workspaceRoots: workspaceRootsOf(e),
    pilotProfile: e.CP_PILOT_PROFILE,
    natsUrl: nats.servers,
    natsCreds: nats.credsFile,
    natsCa: nats.tls?.caFile,
    jobKeep: { okMs: e.CP_JOB_KEEP_S * 1000, failedMs: e.CP_JOB_KEEP_FAILED_S * 1000 },
    taskLogs: {
      maxBytes: e.CP_TASK_LOG_MAX_BYTES,
      chunkBytes: e.CP_TASK_LOG_CHUNK_BYTES,
      pollMs: e.CP_TASK_LOG_POLL_MS,
    },
    kubernetesStaging: kubernetesStagingOf(e),
    stagesFile: e.CP_TASK_STAGES_FILE,
    pidHoldMs: e.CP_SPAWNER_PID_HOLD_MS,
  };
}

/** A pilot worker's settings: the runner's, and how long it idles and how many it holds. */
export function pilotWorkerConfig(env: NodeJS.ProcessEnv = process.env): {
  readonly runner: RunnerConfig;
  readonly idleS: number;
  readonly maxAckPending: number;
  readonly stageDir: string | undefined;
} {
  const e = loadEnv(pilotWorkerEnv, env);
  return {
    runner: runnerConfig(env),
    idleS: e.CP_PILOT_IDLE_TIMEOUT_S,
    maxAckPending: e.CP_PILOT_MAX_ACK_PENDING,
    stageDir: e.CP_PILOT_STAGE_DIR,
  };
}
