import { join } from 'node:path';
import { Bus, type Logger } from '@computepods/bus';
import { ProjectRegistry } from '@computepods/projects';
import { provisionProject, provisionRegistry } from './provision.js';
import type { AuthStore, ProjectLimits } from './store.js';

export interface BootstrapOptions {
  readonly store: AuthStore;
  readonly servers: string;
  readonly project: string;
  /** Where the local runner keeps its job folders (the `local` resource of this machine). */
  readonly runnerDir: string;
  /** The person who administers the project (a member with role admin). */
  readonly admin?: string;
  readonly limits?: ProjectLimits;
  readonly logger?: Logger;
}

/**
 * One machine's secure start, as `up` and the end-to-end tests run it: the registry, the
 * project's account with its streams and buckets, and, the first time, the project record (one
 * admin), this machine's `local` resource and a `local` queue bound to it, through the projects
 * registry as `cpctrl project create` and `cpctrl queue create` write them. Returns the project
 * admin's creds file.
 */
export async function bootstrapProject(options: BootstrapOptions): Promise<string> {
  const { store, servers, project } = options;
  const registryCreds = await provisionRegistry(store, servers, options.logger);
  const creds = await provisionProject({
    store,
    servers,
    project,
    ...(options.limits ? { limits: options.limits } : {}),
    ...(options.logger ? { logger: options.logger } : {}),
  });
  const connect = (credsFile: string, as: string) =>
    Bus.connect({
      servers,
      credsFile,
      service: 'bootstrap',
      project: as,
      discoverable: false,
      giveUpAfterMs: 10_000,
      ...(options.logger ? { logger: options.logger } : {}),
    });
  const registry = await connect(registryCreds, project);
  const own = await connect(creds, project);
  try {
    const projects = new ProjectRegistry({ registry, project: async () => own });
    if (!(await projects.get(project)))
      await projects.create({
        name: project,
        description: 'made by up on this machine',
        admin: options.admin ?? 'admin',
      });
    const catalog = await projects.catalog();
    if (!(await catalog.resource('local')))
      await catalog.createResource({
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
    if (!(await projects.queues(project)).some((q) => q.name === 'local'))
      await projects.createQueue(project, { name: 'local', resource: 'local', concurrency: 8 });
  } finally {
    await Promise.allSettled([registry.close(), own.close()]);
  }
  return creds;
}
