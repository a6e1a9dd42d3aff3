import { readFileSync } from 'node:fs';
import type { ResourceCatalog } from '@computepods/projects';
import { resourceWarning, shownProfile, shownResource } from '@computepods/protocol';
import type { Command } from 'commander';
import { parse as parseYaml } from 'yaml';
import type { Context } from '../context.js';
import { CliError, printJson, printTable } from '../output.js';
import { withRegistry } from '../with-registry.js';

function readConfigFile(file: string): unknown {
  let text: string;
  try {
    text = file === '-' ? readFileSync(0, 'utf8') : readFileSync(file, 'utf8');
  } catch (err) {
    throw new CliError('CP_FILE', `cannot read ${file}: ${(err as Error).message}`);
  }
  try {
    return file.endsWith('.json') || text.trimStart().startsWith('{')
      ? JSON.parse(text)
      : parseYaml(text);
  } catch (err) {
    throw new CliError('CP_FILE', `${file} is not valid JSON or YAML: ${(err as Error).message}`);
  }
}

/**
 * Runs an action on the lab-wide catalog (resources, profiles and who uses them). In-use checks
 * live there, made with revision-checked writes so they cannot race (packages/projects).
 */
function withCatalog(
  cmd: Command,
  action: (catalog: ResourceCatalog, ctx: Context) => Promise<void>,
): Promise<void> {
  return withRegistry(cmd, async (projects, ctx) => action(await projects.catalog(), ctx));
}

const refreshed = (queues: { project: string; queue: string }[]) =>
  queues.length
    ? ` (and the copy of queue(s) ${queues.map((q) => `${q.project}/${q.queue}`).join(', ')}; their runners pick it up when restarted)`
    : '';

/** `cpctrl resource …` and `cpctrl profile …`: computational resources and the accounts that use them, in NATS KV. */
export function resourceCommands(program: Command): void {
  const resource = program
    .command('resource')
    .alias('resources')
    .description('computational resources (local, slurm_sudo, slurm_ssh, kubernetes)');
  resource
    .command('create')
    .requiredOption('-f, --file <file>', 'resource JSON or YAML (Fractal shape); - reads stdin')
    .option(
      '--replace',
      'replace an existing resource with the same id (same type); queues using it get the new copy',
      false,
    )
    .description('validate a resource and store it (errors name the field)')
    .action(async (opts: { file: string; replace: boolean }, cmd: Command) =>
      withRegistry(cmd, async (projects, ctx) => {
        const catalog = await projects.catalog();
        const { id, resource: r } = await catalog.createResource(readConfigFile(opts.file), {
          replace: opts.replace,
        });
        // The queues using it keep a copy of it (their runners read it there).
        const queues = opts.replace ? await projects.refreshQueues('resource', id) : [];
        const warning = resourceWarning(r);
        if (ctx.json)
          printJson({ id, resource: shownResource(r), queues, ...(warning ? { warning } : {}) });
        else
          process.stdout.write(
            `resource ${id} (${r.type}) stored${refreshed(queues)}; bind a project to it with \`cpctrl queue create NAME --resource ${id}\`${warning ? `\nnote: ${warning}` : ''}\n`,
          );
      }),
    );
  resource
    .command('list')
    .description('list resources')
    .action(async (_o, cmd: Command) =>
      withCatalog(cmd, async (catalog, ctx) => {
        const all = await catalog.listResources();
        const profs = await catalog.listProfiles();
        if (ctx.json) return printJson([...all].map(([id, r]) => ({ id, ...shownResource(r) })));
        printTable(
          [...all].map(([id, r]) => [
            id,
            r.type,
            r.name,
            [...profs]
              .filter(([, p]) => p.resource === id)
              .map(([pid]) => pid)
              .join(',') || '-',
          ]),
          ['ID', 'TYPE', 'NAME', 'PROFILES'],
        );
      }),
    );
  resource
    .command('show')
    .argument('<id>')
    .description('print one resource as JSON')
    .action(async (id: string, _o, cmd: Command) =>
      withCatalog(cmd, async (catalog) => {
        const r = await catalog.resource(id);
        if (!r)
          throw new CliError(
            'CP_NOT_FOUND',
            `no resource ${id}; \`cpctrl resource list\` lists them`,
          );
        printJson({ id, ...shownResource(r) });
      }),
    );
  resource
    .command('delete')
    .argument('<id>')
    .description('delete a resource (refused while a profile or queue uses it)')
    .action(async (id: string, _o, cmd: Command) =>
      withCatalog(cmd, async (catalog, ctx) => {
        await catalog.deleteResource(id);
        if (ctx.json) printJson({ id, deleted: true });
        else process.stdout.write(`resource ${id} deleted\n`);
      }),
    );

  const profile = program
    .command('profile')
    .alias('profiles')
    .description('profiles: the user or service account that runs jobs on a resource');
  profile
    .command('create')
    .requiredOption('-f, --file <file>', 'profile JSON or YAML (Fractal shape); - reads stdin')
    .option(
      '-r, --resource <id>',
      'the resource it binds to (default: its "resource" field, or the only resource of its type)',
    )
    .option(
      '--replace',
      'replace an existing profile with the same id (same resource); queues using it get the new copy',
      false,
    )
    .description('validate a profile against its resource and store it')
    .action(async (opts: { file: string; resource?: string; replace: boolean }, cmd: Command) =>
      withRegistry(cmd, async (projects, ctx) => {
        const catalog = await projects.catalog();
        const { id, profile: bound } = await catalog.createProfile(readConfigFile(opts.file), {
          ...(opts.resource ? { resource: opts.resource } : {}),
          replace: opts.replace,
        });
        const queues = opts.replace ? await projects.refreshQueues('profile', id) : [];
        if (ctx.json) printJson({ id, profile: shownProfile(bound), queues });
        else
          process.stdout.write(
            `profile ${id} stored for resource ${bound.resource}${refreshed(queues)}; a queue uses it with \`cpctrl queue create NAME --resource ${bound.resource} --profile ${id}\`\n`,
          );
      }),
    );
  profile
    .command('list')
    .description('list profiles')
    .action(async (_o, cmd: Command) =>
      withCatalog(cmd, async (catalog, ctx) => {
        const all = await catalog.listProfiles();
        if (ctx.json) return printJson([...all].map(([id, p]) => ({ id, ...shownProfile(p) })));
        printTable(
          [...all].map(([id, p]) => [
            id,
            p.resource_type,
            p.resource ?? '-',
            'username' in p ? String(p.username) : '-',
            p.name,
          ]),
          ['ID', 'TYPE', 'RESOURCE', 'USER', 'NAME'],
        );
      }),
    );
  profile
    .command('show')
    .argument('<id>')
    .description('print one profile as JSON')
    .action(async (id: string, _o, cmd: Command) =>
      withCatalog(cmd, async (catalog) => {
        const p = await catalog.profile(id);
        if (!p)
          throw new CliError(
            'CP_NOT_FOUND',
            `no profile ${id}; \`cpctrl profile list\` lists them`,
          );
        printJson({ id, ...shownProfile(p) });
      }),
    );
  profile
    .command('delete')
    .argument('<id>')
    .option(
      '--release-stale',
      'release a use of its resource left by a create or delete that stopped half-way',
    )
    .description('delete a profile (refused while a queue uses it)')
    .action(async (id: string, opts: { releaseStale?: boolean }, cmd: Command) =>
      withCatalog(cmd, async (catalog, ctx) => {
        await catalog.deleteProfile(id, { releaseStale: !!opts.releaseStale });
        if (ctx.json) printJson({ id, deleted: true });
        else process.stdout.write(`profile ${id} deleted\n`);
      }),
    );
}
