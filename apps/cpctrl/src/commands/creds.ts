import {
  AuthStore,
  type Grant,
  PERSON_ROLES,
  type RoleName,
  revokeUser,
  SERVICE_ROLES,
  serverConfigLines,
  userName,
} from '@computepods/auth';
import type { Command } from 'commander';
import { type GlobalOptions, resolveContext } from '../context.js';
import { CliError, printJson } from '../output.js';

const ROLES: readonly RoleName[] = [...SERVICE_ROLES, ...PERSON_ROLES];

/** What --name means for each role: the name its credentials are bound to. */
const NAME_OF: Record<RoleName, string> = {
  majordomo: '(none)',
  chef: "the chef's name (CP_CHEF)",
  runner: 'the queue it serves (cpctrl queue create)',
  fswatcher: 'the pod it watches (CP_POD)',
  inotify2nats: 'the pod it feeds (--pod)',
  admin: 'the person (a project member)',
  member: 'the person (a project member)',
  viewer: 'the person (a project member)',
};

function grantOf(role: string, name: string | undefined, project: string): Grant {
  if (!ROLES.includes(role as RoleName))
    throw new CliError('CP_BAD_ROLE', `role ${JSON.stringify(role)}: one of ${ROLES.join(', ')}`);
  const r = role as RoleName;
  if (r === 'majordomo' && name)
    throw new CliError('CP_BAD_NAME', 'majordomo credentials are not bound to a name: drop --name');
  if (r !== 'majordomo' && !name)
    throw new CliError('CP_BAD_NAME', `--name: ${r} credentials are bound to ${NAME_OF[r]}`);
  const grant = { role: r, project, ...(name ? { scope: name } : {}) };
  try {
    userName(grant);
  } catch (err) {
    throw new CliError('CP_BAD_NAME', `--name: ${(err as Error).message}`);
  }
  return grant;
}

async function store(dir: string | undefined): Promise<AuthStore> {
  if (!dir)
    throw new CliError(
      'CP_NO_AUTH_DIR',
      "making or revoking credentials needs the lab admin's auth dir (the operator key): set CP_AUTH_DIR (up makes <state>/auth), or ask your lab admin",
    );
  return AuthStore.existing(dir);
}

/**
 * `cpctrl creds …`: NATS credentials for a service or a person of the project, each allowed
 * exactly what its role does (packages/auth/src/roles.ts). Needs the lab admin's auth dir.
 */
export function credsCommand(program: Command): void {
  const creds = program
    .command('creds')
    .description("NATS credentials for a project's services and people (lab admin)")
    .addHelpText(
      'after',
      `
Roles and what --name binds them to:
${ROLES.map((r) => `  ${r.padEnd(13)} ${NAME_OF[r]}`).join('\n')}

Examples:
  cpctrl creds create chef --name latex            # NATS_CREDS for CP_CHEF=latex
  cpctrl creds create fswatcher --name pod-a       # a pod's watcher
  cpctrl creds create inotify2nats --name laptop   # a person's laptop feeding pod "laptop"
  cpctrl creds create member --name alice          # a person (add them with project member add)
  cpctrl creds revoke member --name alice          # refused at once, connections closed`,
    );
  creds
    .command('create')
    .argument('<role>', ROLES.join('|'))
    .option('--name <name>', 'what the credentials are bound to (see cpctrl creds --help)')
    .description('write a creds file for NATS_CREDS / --creds and print its path')
    .action(async (role: string, opts: { name?: string }, cmd: Command) => {
      const ctx = resolveContext(cmd.optsWithGlobals<GlobalOptions>());
      const grant = grantOf(role, opts.name, ctx.project);
      const path = await (await store(ctx.authDir)).grantCreds(grant);
      if (ctx.json) return printJson({ project: ctx.project, role, user: userName(grant), path });
      process.stdout.write(
        `${path}\n(${role} of project ${ctx.project} as NATS user ${userName(grant)}; give the file to whoever runs it, mode 0600: it is a secret)\n`,
      );
    });
  creds
    .command('server-config')
    .option(
      '--resolver-dir <dir>',
      "where the server's resolver keeps account JWTs",
      '/var/lib/computepods/nats-resolver',
    )
    .description(
      'print the nats-server lines that make a server trust this auth dir (include them; see deploy/nats)',
    )
    .action(async (opts: { resolverDir: string }, cmd: Command) => {
      const ctx = resolveContext(cmd.optsWithGlobals<GlobalOptions>());
      const lines = serverConfigLines(await store(ctx.authDir), opts.resolverDir);
      process.stdout.write(
        `# Operator mode for ComputePods, from ${ctx.authDir}: \`cpctrl creds server-config\`\n${lines.join('\n')}\n`,
      );
    });
  creds
    .command('revoke')
    .argument('<role>', ROLES.join('|'))
    .option('--name <name>', 'what the credentials are bound to')
    .description(
      'revoke every credential ever issued for it: refused at once, open connections closed',
    )
    .action(async (role: string, opts: { name?: string }, cmd: Command) => {
      const ctx = resolveContext(cmd.optsWithGlobals<GlobalOptions>());
      const grant = grantOf(role, opts.name, ctx.project);
      const revoked = await revokeUser(
        await store(ctx.authDir),
        ctx.natsUrl,
        ctx.project,
        userName(grant),
      );
      if (ctx.json) return printJson({ project: ctx.project, user: userName(grant), revoked });
      process.stdout.write(
        `revoked ${revoked} credential${revoked === 1 ? '' : 's'} of ${userName(grant)} in project ${ctx.project}\n`,
      );
    });
}
