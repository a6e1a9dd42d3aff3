import { join } from 'node:path';
import { Bus, type Logger } from '@computepods/bus';
import { buckets, Project, parseResource, ResolvedQueue } from '@computepods/protocol';
import { provisionProject, provisionRegistry } from './provision.js';
import type { AuthStore, ProjectLimits } from './store.js';

export interface BootstrapOptions {
  readonly store: AuthStore;
  readonly servers: string;
  readonly project: string;
  /** Where the local runner keeps its job folders (the `local` queue's resource). */
  readonly runnerDir: string;
  /** The person who administers the project (a member with role admin). */
  readonly admin?: string;
  readonly limits?: ProjectLimits;
  readonly logger?: Logger;
}

/**
 * One machine's secure start, as `up` and the end-to-end tests run it: the registry, the
 * project's account with its streams and buckets, and (only when the project has no record
 * yet) a project record with one admin and a `local` queue on this machine. Returns the
 * project admin's creds file.
 */
export async function bootstrapProject(options: BootstrapOptions): Promise<string> {
  const { store, servers, project } = options;
  await provisionRegistry(store, servers, options.logger);
  const creds = await provisionProject({
    store,
    servers,
    project,
    ...(options.limits ? { limits: options.limits } : {}),
    ...(options.logger ? { logger: options.logger } : {}),
  });
  const bus = await Bus.connect({
    servers,
    credsFile: creds,
    service: 'bootstrap',
    project,
    discoverable: false,
    giveUpAfterMs: 10_000,
    ...(options.logger ? { logger: options.logger } : {}),
  });
  try {
    const config = await bus.kv(buckets.config(project), ResolvedQueue.or(Project));
    if ((await config.get('project')) !== undefined) return creds;
    const now = new Date().toISOString();
    const queue = { name: 'local', resource: 'local', concurrency: 8 };
    const resource = parseResource({
      type: 'local',
      name: 'local',
      id: 'local',
      jobs_local_dir: join(options.runnerDir, 'tasks'),
      jobs_runner_config: {},
      jobs_poll_interval: 0,
      tasks_local_dir: join(options.runnerDir, 'task-envs'),
      tasks_python_config: { default_version: '3.12', versions: { '3.12': '/usr/bin/python3' } },
      tasks_pixi_config: {},
    });
    await config.put('queue.local', ResolvedQueue.parse({ queue, resource }));
    await config.put(
      'project',
      Project.parse({
        name: project,
        description: 'made by up on this machine',
        members: [{ user: options.admin ?? 'admin', role: 'admin' }],
        queues: [queue],
        created: now,
        updated: now,
      }),
    );
  } finally {
    await bus.close();
  }
  return creds;
}
