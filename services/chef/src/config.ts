import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { checkName, checkProject } from '@computepods/protocol';

export interface ChefConfig {
  readonly project: string;
  readonly chef: string;
  readonly pod: string;
  readonly workspace: string;
  readonly definitionFile: string;
  readonly concurrency: number;
}

const BUILTIN = new URL('../chefs/', import.meta.url).pathname;

/** Settings from the environment; CP_CHEF_DEFINITION may name a builtin chef (generic, latex, c). */
export function chefConfig(env: NodeJS.ProcessEnv = process.env): ChefConfig {
  const def = env.CP_CHEF_DEFINITION ?? 'generic';
  const concurrency = Number(env.CP_CHEF_CONCURRENCY ?? 8);
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new Error(
      `CP_CHEF_CONCURRENCY must be a positive integer, got ${JSON.stringify(env.CP_CHEF_CONCURRENCY)}`,
    );
  }
  return {
    project: checkProject(env.CP_PROJECT ?? 'demo'),
    chef: checkName('chef name (CP_CHEF)', env.CP_CHEF ?? 'chef'),
    pod: env.CP_POD ?? hostname(),
    workspace: resolve(env.CP_WORKSPACE ?? '.'),
    definitionFile: /^[a-z0-9-]+$/.test(def) ? `${BUILTIN}${def}.yaml` : resolve(def),
    concurrency,
  };
}
