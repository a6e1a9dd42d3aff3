import { userInfo } from 'node:os';
import { AuthStore, provisionProject } from '@computepods/auth';
import type { ProjectRegistry } from '@computepods/projects';
import { checkProject, type Project, Role, UserName } from '@computepods/protocol';
import { type Command, Option } from 'commander';
import { configPath, readConfig, writeConfig } from '../config-file.js';
import { type Context, type GlobalOptions, resolveContext } from '../context.js';
import { CliError, printJson, printTable } from '../output.js';
import { withRegistry } from '../with-registry.js';
import { PROJECT_NOTE } from './queue.js';

const collect = (value: string, previous: string[] = []) => [...previous, value];

function parseActive(value: string): boolean {
  if (value === 'true') return true;
  if (value === 'false') return false;
  throw new CliError('CP_INVALID', `--active takes true or false, not ${JSON.stringify(value)}`);
}

/** The OS login, when it is a valid member name: the default first admin. */
function defaultAdmin(): string | undefined {
  try {
    const name = userInfo().username;
    return UserName.safeParse(name).success ? name : undefined;
  } catch {
    return undefined;
  }
}

function printProject(p: Project, current: string): void {
  const lines = [
    ['name', `${p.name}${p.name === current ? ' (current)' : ''}`],
    ['description', p.description || '-'],
    ['tags', p.tags.join(', ') || '-'],
    [
      'active',
      p.active
        ? 'yes'
        : `no: new builds are refused (cpctrl project update ${p.name} --active true)`,
    ],
    ['members', p.members.map((m) => `${m.user} (${m.role})`).join(', ') || '-'],
    [
      'queues',
      p.queues
        .map(
          (q) => `${q.name} → ${q.resource}${q.profile ? `/${q.profile}` : ''} ×${q.concurrency}`,
        )
        .join(', ') ||
        `none: it cannot run tasks until one is bound (cpctrl queue create NAME --resource ID --project ${p.name})`,
    ],
    ['created', p.created],
    ['updated', p.updated],
  ];
  for (const [k, v] of lines) process.stdout.write(`${`${k}:`.padEnd(13)}${v}\n`);
}

const projectOf = (ctx: Context, name?: string) => (name ? checkProject(name) : ctx.project);

/** `cpctrl project …`: projects (namespaces with members and queues) and the current one. */
export function projectCommand(program: Command): void {
  const project = program
    .command('project')
    .alias('projects')
    .description(
      'projects: namespaces with members and queues; the current one, like a kube context',
    )
    .addHelpText(
      'after',
      `
A project groups builds (its own subjects, streams and buckets), has members with a role
(admin: everything; member: build and control tasks; viewer: read) and queues that bind it to
a resource and profile. Every command works on the current project unless --project names one.

Examples:
  cpctrl project create thesis --description "my PhD" --tag phd --admin alice
  cpctrl project use thesis
  cpctrl queue create default --resource local
  cpctrl project member add bob --role member
  cpctrl project update thesis --active false     # refuses new builds, keeps history`,
    );

  project
    .command('create')
    .argument('<name>', 'project name: 1-63 of a-z 0-9 - _')
    .option('--description <text>', 'what the project is for', '')
    .option('--tag <tag>', 'a tag (repeat for more)', collect, [])
    .option('--admin <user>', 'its first admin (default: your login name)')
    .option(
      '--storage-quota <size>',
      'JetStream storage of its NATS account: bytes or 512M, 2G … (default 1G)',
      parseSize,
    )
    .description(
      'create a project, with you (or --admin) as its first admin; in secure mode also its NATS account, streams and buckets',
    )
    .action(
      async (
        name: string,
        opts: { description: string; tag: string[]; admin?: string; storageQuota?: number },
        cmd: Command,
      ) =>
        withRegistry(
          cmd,
          async (projects, ctx) => {
            const admin = opts.admin ?? defaultAdmin();
            if (!admin)
              throw new CliError(
                'CP_INVALID',
                'say who administers the project with --admin USER (your login name is not a valid member name)',
              );
            const p = await projects.create({
              name,
              description: opts.description,
              tags: opts.tag,
              admin,
            });
            if (ctx.json) return printJson(p);
            process.stdout.write(
              `project ${p.name} created, admin ${admin}.\nNext: \`cpctrl project use ${p.name}\`, then bind it to a resource: \`cpctrl queue create default --resource ID\` (\`cpctrl resource list\`)\n`,
            );
          },
          opts.storageQuota ? { limits: { diskBytes: opts.storageQuota } } : {},
        ),
    );

  project
    .command('list')
    .description('list projects (* marks the current one)')
    .action(async (_o, cmd: Command) =>
      withRegistry(cmd, async (projects, ctx) => {
        const all = await projects.list();
        if (ctx.json) return printJson(all);
        printTable(
          all.map((p) => [
            `${p.name === ctx.project ? '*' : ' '} ${p.name}`,
            p.active ? 'yes' : 'no',
            p.queues.map((q) => q.name).join(',') || '-',
            String(p.members.length),
            p.tags.join(',') || '-',
            p.description,
          ]),
          ['  NAME', 'ACTIVE', 'QUEUES', 'MEMBERS', 'TAGS', 'DESCRIPTION'],
        );
      }),
    );

  project
    .command('show')
    .argument('[name]', 'project (default: the current one)')
    .description('a project: description, tags, active, members and queues')
    .action(async (name: string | undefined, _o, cmd: Command) =>
      withRegistry(cmd, async (projects, ctx) => {
        const p = await projects.show(projectOf(ctx, name));
        if (ctx.json) printJson(p);
        else printProject(p, ctx.project);
      }),
    );

  project
    .command('update')
    .argument('<name>', 'project name')
    .option('--description <text>', 'a new description')
    .option('--tag <tag>', 'the tags, replacing the current ones (repeat for more)', collect)
    .option('--clear-tags', 'remove every tag')
    .addOption(
      new Option('--active <bool>', 'false refuses new builds (history stays); true resumes')
        .choices(['true', 'false'])
        .argParser(parseActive),
    )
    .option(
      '--storage-quota <size>',
      'JetStream storage of its NATS account: bytes or 512M, 2G … (lab admin; applies at once)',
      parseSize,
    )
    .description('change the description, tags, active flag or storage quota')
    .action(
      async (
        name: string,
        opts: {
          description?: string;
          tag?: string[];
          clearTags?: boolean;
          active?: boolean;
          storageQuota?: number;
        },
        cmd: Command,
      ) =>
        withRegistry(cmd, async (projects, ctx) => {
          if (opts.tag && opts.clearTags)
            throw new CliError('CP_INVALID', 'give --tag or --clear-tags, not both');
          if (opts.storageQuota !== undefined) {
            if (!ctx.authDir)
              throw new CliError(
                'CP_NO_AUTH_DIR',
                "a storage quota is the NATS account's: set CP_AUTH_DIR to the lab admin's auth dir",
              );
            await provisionProject({
              store: await AuthStore.existing(ctx.authDir),
              servers: ctx.natsUrl,
              project: checkProject(name),
              limits: { diskBytes: opts.storageQuota },
            });
          }
          const tags = opts.clearTags ? [] : opts.tag;
          const changes = {
            ...(opts.description !== undefined ? { description: opts.description } : {}),
            ...(tags ? { tags } : {}),
            ...(opts.active !== undefined ? { active: opts.active } : {}),
          };
          // A quota alone changes the account, not the record.
          const p =
            Object.keys(changes).length === 0 && opts.storageQuota !== undefined
              ? await projects.show(checkProject(name))
              : await projects.update(checkProject(name), changes);
          if (ctx.json) return printJson(p);
          process.stdout.write(
            `project ${p.name} updated${p.active ? '' : ' (inactive: new builds are refused)'}\n`,
          );
        }),
    );

  project
    .command('delete')
    .argument('<name>', 'project name')
    .description('delete a project (refused while it has queues: delete those first)')
    .addHelpText(
      'after',
      `
Its queues go first (cpctrl queue delete NAME --project P), which releases its resources and
leaves nothing of it running; MajorDomo then refuses its builds. Its streams and history are
kept. To pause a project instead, use \`cpctrl project update NAME --active false\`.`,
    )
    .action(async (name: string, _o, cmd: Command) =>
      withRegistry(cmd, async (projects, ctx) => {
        await projects.delete(checkProject(name));
        if (ctx.json) printJson({ project: name, deleted: true });
        else process.stdout.write(`project ${name} deleted\n`);
      }),
    );

  project
    .command('use')
    .argument('<name>', 'project name')
    .description('make NAME the current project for later commands')
    .action((name: string, _opts, cmd: Command) => {
      const { output } = cmd.optsWithGlobals<GlobalOptions>();
      writeConfig({ ...readConfig(), project: checkProject(name) });
      if (output === 'json') printJson({ project: name, config: configPath() });
      else process.stdout.write(`current project: ${name} (saved in ${configPath()})\n`);
    });

  project
    .command('current')
    .description('print the current project')
    .action((_opts, cmd: Command) => {
      const ctx = resolveContext(cmd.optsWithGlobals<GlobalOptions>());
      if (ctx.json) printJson({ project: ctx.project, natsUrl: ctx.natsUrl });
      else process.stdout.write(`${ctx.project}\n`);
    });

  memberCommands(project);
}

async function printMembers(projects: ProjectRegistry, ctx: Context): Promise<void> {
  const members = await projects.members(ctx.project);
  if (ctx.json) return printJson(members);
  printTable(
    members.map((m) => [m.user, m.role]),
    ['USER', 'ROLE'],
  );
}

function memberCommands(project: Command): void {
  const member = project
    .command('member')
    .alias('members')
    .description('who may do what in the current project (or --project P)');
  member
    .command('add')
    .argument('<user>', 'login name: 1-32 of a-z 0-9 - _')
    .addOption(
      new Option('--role <role>', 'admin: everything; member: build, control tasks; viewer: read')
        .choices(Role.options)
        .makeOptionMandatory(),
    )
    .description("add a member, or change a member's role")
    .action(async (user: string, opts: { role: Role }, cmd: Command) =>
      withRegistry(cmd, async (projects, ctx) => {
        const p = await projects.addMember(ctx.project, { user, role: opts.role });
        if (ctx.json) return printJson(p.members);
        process.stdout.write(`${user} is a ${opts.role} of project ${p.name}\n`);
      }),
    );
  member
    .command('remove')
    .argument('<user>', 'login name')
    .description('remove a member (a project keeps at least one admin)')
    .action(async (user: string, _o, cmd: Command) =>
      withRegistry(cmd, async (projects, ctx) => {
        const p = await projects.removeMember(ctx.project, user);
        if (ctx.json) return printJson(p.members);
        process.stdout.write(`${user} is no longer a member of project ${p.name}\n`);
      }),
    );
  member
    .command('list')
    .description('members and their roles')
    .action(async (_o, cmd: Command) => withRegistry(cmd, printMembers));
  for (const c of member.commands) c.addHelpText('after', PROJECT_NOTE);
}

/** A size for --storage-quota: bytes, or a number with K, M, G or T (powers of 1024). */
function parseSize(value: string): number {
  const m = /^([0-9]+)([KMGT]?)i?B?$/i.exec(value.trim());
  if (!m)
    throw new CliError(
      'CP_INVALID',
      `--storage-quota ${JSON.stringify(value)}: give bytes, or a size such as 512M or 2G`,
    );
  const unit = { '': 0, K: 1, M: 2, G: 3, T: 4 }[
    (m[2] ?? '').toUpperCase() as '' | 'K' | 'M' | 'G' | 'T'
  ];
  const bytes = Number(m[1]) * 1024 ** unit;
  if (bytes < 1024 * 1024)
    throw new CliError(
      'CP_INVALID',
      '--storage-quota: at least 1M (its streams and buckets need room)',
    );
  return bytes;
}
