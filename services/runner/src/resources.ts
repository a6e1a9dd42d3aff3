import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Bus } from '@computepods/bus';
import {
  buckets,
  InvalidConfigError,
  type Profile,
  parseProfile,
  parseResource,
  type Resource,
} from '@computepods/protocol';
import { z } from 'zod';
import type { RunnerConfig } from './config.js';

function readJson(path: string, what: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new InvalidConfigError(what, [`${path}: ${(err as Error).message}`], { cause: err });
  }
}

async function fromKv(bus: Bus, bucket: string, key: string): Promise<unknown> {
  const kv = await bus.kv(bucket, z.unknown());
  return (await kv.get(key))?.value;
}

/**
 * The resource this runner serves: CP_RESOURCE_FILE, else the KV bucket cp_resources under the
 * resource id, else (for "local" only) this machine with CP_PARALLEL tasks at once.
 */
export async function loadResource(bus: Bus, cfg: RunnerConfig): Promise<Resource> {
  if (cfg.resourceFile) return parseResource(readJson(cfg.resourceFile, 'CP_RESOURCE_FILE'));
  const stored = await fromKv(bus, buckets.resources(), cfg.resource);
  if (stored !== undefined) return parseResource(stored);
  if (cfg.resource === 'local')
    return parseResource({
      type: 'local',
      name: 'local',
      id: 'local',
      jobs_local_dir: join(cfg.stateDir, 'tasks'),
      jobs_runner_config: { parallel_tasks_per_job: cfg.parallel },
      jobs_poll_interval: 0,
      tasks_local_dir: join(cfg.stateDir, 'task-envs'),
      tasks_python_config: { default_version: '3.12', versions: { '3.12': '/usr/bin/python3' } },
      tasks_pixi_config: {},
    });
  throw new InvalidConfigError(`resource "${cfg.resource}"`, [
    `not found: put its JSON in KV bucket ${buckets.resources()} under key "${cfg.resource}", or set CP_RESOURCE_FILE`,
  ]);
}

/** The profile for SLURM resources: CP_PROFILE_FILE, else KV bucket cp_profiles under CP_PROFILE. */
export async function loadProfile(
  bus: Bus,
  cfg: RunnerConfig,
  resource: Resource,
): Promise<Profile | undefined> {
  if (cfg.profileFile) return parseProfile(readJson(cfg.profileFile, 'CP_PROFILE_FILE'));
  if (!cfg.profile) {
    if (resource.type === 'local') return undefined;
    throw new InvalidConfigError(`runner for resource "${cfg.resource}"`, [
      `CP_PROFILE: a ${resource.type} resource needs a profile (set CP_PROFILE to its id in ${buckets.profiles()}, or CP_PROFILE_FILE)`,
    ]);
  }
  const stored = await fromKv(bus, buckets.profiles(), cfg.profile);
  if (stored === undefined)
    throw new InvalidConfigError(`profile "${cfg.profile}"`, [
      `not found: put its JSON in KV bucket ${buckets.profiles()} under key "${cfg.profile}", or set CP_PROFILE_FILE`,
    ]);
  return parseProfile(stored);
}
