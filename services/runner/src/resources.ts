import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Bus, isPermissionDenied } from '@computepods/bus';
import {
  buckets,
  InvalidConfigError,
  type Profile,
  parseProfile,
  parseResource,
  ResolvedQueue,
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

/**
 * A registry record, when this runner may read the registry at all: with the secure default's
 * credentials it may not (the registry is another NATS account), and its queue says everything.
 */
async function fromKv(bus: Bus, bucket: string, key: string): Promise<unknown> {
  try {
    const kv = await bus.kv(bucket, z.unknown(), { leaderReads: true });
    return (await kv.get(key))?.value;
  } catch (err) {
    if (isPermissionDenied(err)) return undefined;
    throw err;
  }
}

/**
 * The queue this runner serves, as an admin bound it (`queue.<name>` in `cp_<p>_config`): the
 * resource and the one profile its tasks may run under. Registry records are read from their
 * bucket's leader (leaderReads), as the registry reads them: a runner is started right after
 * its queue is bound, and on a cluster a replica may not have the binding yet.
 */
export async function loadQueue(bus: Bus, cfg: RunnerConfig): Promise<ResolvedQueue | undefined> {
  const kv = await bus.kv(buckets.config(cfg.project), ResolvedQueue, { leaderReads: true });
  return (await kv.get(`queue.${cfg.queue}`))?.value;
}

/**
 * The resource this runner serves: CP_RESOURCE_FILE, else its queue's, else the KV bucket
 * cp_resources under the resource id, else (for "local" only) this machine with CP_PARALLEL
 * tasks at once.
 */
export async function loadResource(
  bus: Bus,
  cfg: RunnerConfig,
  queue?: ResolvedQueue,
): Promise<Resource> {
  if (cfg.resourceFile) return parseResource(readJson(cfg.resourceFile, 'CP_RESOURCE_FILE'));
  if (queue) {
    const r = queue.resource;
    // A local queue that leaves the parallelism open runs CP_PARALLEL tasks at once.
    if (r.type === 'local' && r.jobs_runner_config.parallel_tasks_per_job == null)
      return { ...r, jobs_runner_config: { parallel_tasks_per_job: cfg.parallel } };
    return r;
  }
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

/**
 * The profile for SLURM resources: CP_PROFILE_FILE, else the queue's (CP_PROFILE, when set, must
 * name it), else KV bucket cp_profiles under CP_PROFILE.
 */
export async function loadProfile(
  bus: Bus,
  cfg: RunnerConfig,
  resource: Resource,
  queue?: ResolvedQueue,
): Promise<Profile | undefined> {
  if (cfg.profileFile) return parseProfile(readJson(cfg.profileFile, 'CP_PROFILE_FILE'));
  if (queue) {
    const granted = queue.queue.profile;
    if (cfg.profile && cfg.profile !== granted)
      throw new InvalidConfigError(`runner for queue "${queue.queue.name}"`, [
        `CP_PROFILE: "${cfg.profile}" is not the profile this queue grants (${granted ? `"${granted}"` : 'none'}); drop CP_PROFILE or ask an admin to bind a queue to it`,
      ]);
    if (queue.profile || resource.type === 'local') return queue.profile;
  }
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
