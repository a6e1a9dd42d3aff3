import { hostname } from 'node:os';
import { resolve } from 'node:path';
import {
  defineEnv,
  envIntType,
  envName,
  envString,
  envText,
  loadEnv,
  projectEnv,
  TIMER_MS,
} from '@computepods/protocol';
import { loadPods, type PodsConfig } from './pods.js';
import type { TaskWaitLimits } from './task-wait.js';

/** Every variable the chef reads: its README's table is written from these (pnpm env-docs). */
export const chefEnv = defineEnv({
  ...projectEnv,
  CP_CHEF: {
    schema: envName(),
    default: 'chef',
    doc: 'name; its work queue is `cp.<project>.build.request.<name>`',
  },
  CP_POD: { schema: envText(), shown: 'the host name', doc: 'the pod this chef builds in' },
  CP_WORKSPACE: { schema: envString(), default: '.', doc: "the pod's workspace directory" },
  CP_CHEF_DEFINITION: {
    schema: envString(),
    default: 'generic',
    doc: 'a builtin (`generic`, `latex`, `c`: `chefs/NAME.yaml`) or a YAML/JSON file',
  },
  CP_CHEF_CONCURRENCY: { schema: envIntType(), default: '8', doc: 'builds handled at once' },
  CP_CHEF_ACK_WAIT_MS: {
    schema: envIntType(TIMER_MS),
    default: '30000',
    doc: 'how long a pulled request may stay unacknowledged before JetStream hands it to another replica (kept alive while its build runs); a replica that dies has its requests handed on by MajorDomo after `CP_CHEF_REPLICA_DEAD_S` instead',
  },
  CP_CHEF_HEARTBEAT_MS: {
    schema: envIntType(TIMER_MS),
    default: '5000',
    doc: 'how often the declaration is re-put; MajorDomo retires a chef silent for `CP_CHEF_TIMEOUT_MS` (its setting, default 15000: keep it ≥ 3 heartbeats)',
  },
  CP_CHEF_TASK_RECORD_MS: {
    schema: envIntType(TIMER_MS),
    default: String(24 * 3_600_000),
    doc: 'a submitted task no runner has recorded this long fails its build (`CP_TASK_NO_RECORD`, naming the queue) instead of holding a build slot; a task waits unrecorded while pilots are busy or the runner is down',
  },
  CP_CHEF_TASK_WAIT_MS: {
    schema: envIntType(TIMER_MS),
    default: String(7 * 24 * 3_600_000),
    doc: 'a task not ended this long fails its build (`CP_TASK_WAIT_TIMEOUT`)',
  },
  CP_CHEF_STOP_WAIT_MS: {
    schema: envIntType(TIMER_MS),
    default: '30000',
    doc: "how long an ended task's processes may still run (killed or timed out, recorded `stopping` until the runner sees them gone: its SIGKILL follows SIGTERM after 5 s) before the chef goes on all the same, with a warning: reporting the build's end or starting the step's next attempt",
  },
  CP_PODS: {
    schema: envText(),
    shown: 'none',
    doc: 'other pods, inline JSON or a JSON file: `{"pod-b": {"host": "10.0.0.2", "port": 22, "user": "cp", "key": "/keys/id_ed25519", "knownHosts": "/keys/known_hosts", "root": "/srv/workspace"}}`',
  },
});

export interface ChefConfig {
  readonly project: string;
  readonly chef: string;
  readonly pod: string;
  readonly workspace: string;
  readonly definitionFile: string;
  readonly concurrency: number;
  /** How long a pulled build request may go unacknowledged (its handler keeps it alive). */
  readonly ackWaitMs: number;
  /** How often the declaration is re-put: MajorDomo retires a chef whose puts stop. */
  readonly heartbeatMs: number;
  /** How long a submitted task may go unrecorded, unended, and stopping (task-wait.ts). */
  readonly taskWait: TaskWaitLimits;
  /** Other pods' workspaces, for inputs this pod lacks. */
  readonly pods: PodsConfig;
}

const BUILTIN = new URL('../chefs/', import.meta.url).pathname;

/** Settings from the environment (chefEnv); a bad value throws, naming the variable. */
export function chefConfig(env: NodeJS.ProcessEnv = process.env): ChefConfig {
  const e = loadEnv(chefEnv, env);
  const def = e.CP_CHEF_DEFINITION;
  return {
    project: e.CP_PROJECT,
    chef: e.CP_CHEF,
    pod: e.CP_POD ?? hostname(),
    workspace: resolve(e.CP_WORKSPACE),
    definitionFile: /^[a-z0-9-]+$/.test(def) ? `${BUILTIN}${def}.yaml` : resolve(def),
    concurrency: e.CP_CHEF_CONCURRENCY,
    ackWaitMs: e.CP_CHEF_ACK_WAIT_MS,
    heartbeatMs: e.CP_CHEF_HEARTBEAT_MS,
    taskWait: {
      recordMs: e.CP_CHEF_TASK_RECORD_MS,
      totalMs: e.CP_CHEF_TASK_WAIT_MS,
      stopMs: e.CP_CHEF_STOP_WAIT_MS,
    },
    pods: loadPods(e.CP_PODS),
  };
}
