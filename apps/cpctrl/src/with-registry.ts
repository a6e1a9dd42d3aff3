import { AuthStore, type ProjectLimits, provisionProject } from '@computepods/auth';
import { type Bus, isPermissionDenied, isStreamMissing } from '@computepods/bus';
import { ProjectRegistry } from '@computepods/projects';
import type { Command } from 'commander';
import {
  authDirCreds,
  type Context,
  connectBus,
  type GlobalOptions,
  resolveContext,
} from './context.js';
import { CliError } from './output.js';

/**
 * Runs an action with a ProjectRegistry and closes every connection it opened. On an open bus
 * (no auth dir) the registry and every project are the same connection. In secure mode (the
 * auth dir `up` made, or CP_AUTH_DIR) the registry is its own NATS account, reached with the
 * registry admin's credentials, and each project with its own admin's.
 */
export async function withRegistry(
  cmd: Command,
  action: (projects: ProjectRegistry, ctx: Context) => Promise<void>,
  options: { limits?: ProjectLimits } = {},
): Promise<void> {
  const ctx = resolveContext(cmd.optsWithGlobals<GlobalOptions>());
  const opened: Bus[] = [];
  const open = async (as?: { project: string; credsFile?: string }) => {
    const bus = await connectBus(ctx, as);
    opened.push(bus);
    return bus;
  };
  const registryCreds = authDirCreds(ctx.authDir, 'registry', 'admin');
  const credsOf = (name: string) =>
    name === ctx.project && ctx.credsFile
      ? ctx.credsFile
      : authDirCreds(ctx.authDir, `p-${name}`, 'admin');
  try {
    const registry = await open(
      registryCreds ? { project: ctx.project, credsFile: registryCreds } : undefined,
    );
    const projects = new ProjectRegistry({
      registry,
      project: async (name) => {
        if (!registryCreds) return registry;
        const credsFile = credsOf(name);
        return open({ project: name, ...(credsFile ? { credsFile } : {}) });
      },
      // In secure mode a project is a NATS account, made (with its quota, streams, buckets and
      // admin credentials) before its record is written; the lab admin's auth dir signs it.
      onCreate: async (p) => {
        if (!ctx.authDir) {
          if (registryCreds)
            throw new CliError(
              'CP_NO_ACCOUNT',
              `project ${p.name}: no auth dir to make its account in`,
            );
          return;
        }
        await provisionProject({
          store: await AuthStore.existing(ctx.authDir),
          servers: ctx.natsUrl,
          project: p.name,
          ...(options.limits ? { limits: options.limits } : {}),
        });
      },
    });
    await action(projects, ctx);
  } catch (err) {
    // Without the registry's credentials the "registry" is the project's own account, which
    // has no registry buckets at all: the same answer as a refusal.
    if (!isPermissionDenied(err) && !(registryCreds === undefined && isStreamMissing(err)))
      throw err;
    throw new CliError(
      'CP_FORBIDDEN',
      `${(err as Error).message}: these credentials may not do this; lab-wide commands (projects, resources, profiles, queues) need a lab admin's (the auth dir \`up\` made, or CP_AUTH_DIR), members only read their project (cpctrl project show)`,
    );
  } finally {
    await Promise.allSettled(opened.map((b) => b.close()));
  }
}
