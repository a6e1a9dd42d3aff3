import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { checkName, checkProject, envInt, TIMER_MS } from '@computepods/protocol';
import { loadPods, type PodsConfig } from './pods.js';

export interface ChefConfig {
  readonly project: string;
  readonly chef: string;
  readonly pod: string;
  readonly workspace: string;
  readonly definitionFile: string;
  readonly concurrency: number;
  /** How often the declaration is re-put: MajorDomo retires a chef whose puts stop. */
  readonly heartbeatMs: number;
  /** Other pods' workspaces, for inputs this pod lacks. */
  readonly pods: PodsConfig;
}

const BUILTIN = new URL('../chefs/', import.meta.url).pathname;

/** Settings from the environment; CP_CHEF_DEFINITION may name a builtin chef (generic, latex, c). */
export function chefConfig(env: NodeJS.ProcessEnv = process.env): ChefConfig {
  const def = env.CP_CHEF_DEFINITION ?? 'generic';
  return {
    project: checkProject(env.CP_PROJECT ?? 'demo'),
    chef: checkName('chef name (CP_CHEF)', env.CP_CHEF ?? 'chef'),
    pod: env.CP_POD ?? hostname(),
    workspace: resolve(env.CP_WORKSPACE ?? '.'),
    definitionFile: /^[a-z0-9-]+$/.test(def) ? `${BUILTIN}${def}.yaml` : resolve(def),
    concurrency: envInt(env, 'CP_CHEF_CONCURRENCY', 8),
    heartbeatMs: envInt(env, 'CP_CHEF_HEARTBEAT_MS', 5_000, TIMER_MS),
    pods: loadPods(env.CP_PODS),
  };
}
