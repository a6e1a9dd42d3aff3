import { readFileSync } from 'node:fs';
import type { Bus } from '@computepods/bus';
import {
  buckets,
  checkProfileFor,
  type Profile,
  Profile as ProfileSchema,
  parseProfile,
  parseResource,
  profileId,
  type Resource,
  Resource as ResourceSchema,
  resourceId,
} from '@computepods/protocol';
import type { Command } from 'commander';
import { parse as parseYaml } from 'yaml';
import { CliError, printJson, printTable } from '../output.js';
import { withBus } from '../with-bus.js';

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

const stores = async (bus: Bus) => ({
  resources: await bus.kv(buckets.resources(), ResourceSchema),
  profiles: await bus.kv(buckets.profiles(), ProfileSchema),
});

async function values<T>(kv: {
  entries(): Promise<Map<string, { value: T }>>;
}): Promise<Map<string, T>> {
  return new Map([...(await kv.entries())].map(([k, v]) => [k, v.value]));
}

/** `cpctrl resource …` and `cpctrl profile …`: computational resources and the accounts that use them, in NATS KV. */
export function resourceCommands(program: Command): void {
  const resource = program
    .command('resource')
    .alias('resources')
    .description('computational resources (local, slurm_sudo, slurm_ssh, kubernetes)');
  resource
    .command('create')
    .requiredOption('-f, --file <file>', 'resource JSON or YAML (Fractal shape); - reads stdin')
    .option('--replace', 'replace an existing resource with the same id', false)
    .description('validate a resource and store it (errors name the field)')
    .action(async (opts: { file: string; replace: boolean }, cmd: Command) =>
      withBus(cmd, async (bus, ctx) => {
        const r = parseResource(readConfigFile(opts.file));
        const id = resourceId(r);
        const { resources } = await stores(bus);
        if (opts.replace) await resources.put(id, r);
        else
          await resources.create(id, r).catch(() => {
            throw new CliError('CP_EXISTS', `resource ${id} exists; use --replace to overwrite it`);
          });
        if (ctx.json) printJson({ id, resource: r });
        else
          process.stdout.write(
            `resource ${id} (${r.type}) stored; a runner serves it with CP_RESOURCE=${id}\n`,
          );
      }),
    );
  resource
    .command('list')
    .description('list resources')
    .action(async (_o, cmd: Command) =>
      withBus(cmd, async (bus, ctx) => {
        const { resources, profiles } = await stores(bus);
        const all = await values<Resource>(resources);
        const profs = await values<Profile>(profiles);
        if (ctx.json) return printJson([...all].map(([id, r]) => ({ id, ...r })));
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
      withBus(cmd, async (bus) => {
        const r = (await (await stores(bus)).resources.get(id))?.value;
        if (!r)
          throw new CliError(
            'CP_NOT_FOUND',
            `no resource ${id}; \`cpctrl resource list\` lists them`,
          );
        printJson({ id, ...r });
      }),
    );
  resource
    .command('delete')
    .argument('<id>')
    .description('delete a resource (refused while a profile uses it)')
    .action(async (id: string, _o, cmd: Command) =>
      withBus(cmd, async (bus, ctx) => {
        const { resources, profiles } = await stores(bus);
        if (!(await resources.get(id)))
          throw new CliError(
            'CP_NOT_FOUND',
            `no resource ${id}; \`cpctrl resource list\` lists them`,
          );
        const users = [...(await values<Profile>(profiles))]
          .filter(([, p]) => p.resource === id)
          .map(([pid]) => pid);
        if (users.length) {
          throw new CliError(
            'CP_IN_USE',
            `resource ${id} is used by profile(s) ${users.join(', ')}; delete those first (cpctrl profile delete ID)`,
          );
        }
        await resources.delete(id);
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
    .option('--replace', 'replace an existing profile with the same id', false)
    .description('validate a profile against its resource and store it')
    .action(async (opts: { file: string; resource?: string; replace: boolean }, cmd: Command) =>
      withBus(cmd, async (bus, ctx) => {
        const p = parseProfile(readConfigFile(opts.file));
        const { resources, profiles } = await stores(bus);
        const all = await values<Resource>(resources);
        let rid = opts.resource ?? p.resource;
        if (!rid) {
          const sameType = [...all].filter(([, r]) => r.type === p.resource_type).map(([id]) => id);
          if (sameType.length !== 1) {
            throw new CliError(
              'CP_PROFILE_RESOURCE',
              sameType.length === 0
                ? `no ${p.resource_type} resource exists yet; create one first (cpctrl resource create -f FILE)`
                : `several ${p.resource_type} resources (${sameType.join(', ')}): say which with --resource ID`,
            );
          }
          rid = sameType[0]!;
        }
        const r = all.get(rid);
        if (!r)
          throw new CliError(
            'CP_NOT_FOUND',
            `no resource ${rid}; \`cpctrl resource list\` lists them`,
          );
        const bound = { ...p, resource: rid } as Profile;
        checkProfileFor(r, bound);
        const id = profileId(bound);
        if (opts.replace) await profiles.put(id, bound);
        else
          await profiles.create(id, bound).catch(() => {
            throw new CliError('CP_EXISTS', `profile ${id} exists; use --replace to overwrite it`);
          });
        if (ctx.json) printJson({ id, profile: bound });
        else
          process.stdout.write(
            `profile ${id} stored for resource ${rid}; a runner uses it with CP_PROFILE=${id}\n`,
          );
      }),
    );
  profile
    .command('list')
    .description('list profiles')
    .action(async (_o, cmd: Command) =>
      withBus(cmd, async (bus, ctx) => {
        const all = await values<Profile>((await stores(bus)).profiles);
        if (ctx.json) return printJson([...all].map(([id, p]) => ({ id, ...p })));
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
      withBus(cmd, async (bus) => {
        const p = (await (await stores(bus)).profiles.get(id))?.value;
        if (!p)
          throw new CliError(
            'CP_NOT_FOUND',
            `no profile ${id}; \`cpctrl profile list\` lists them`,
          );
        printJson({ id, ...p });
      }),
    );
  profile
    .command('delete')
    .argument('<id>')
    .description('delete a profile')
    .action(async (id: string, _o, cmd: Command) =>
      withBus(cmd, async (bus, ctx) => {
        const { profiles } = await stores(bus);
        if (!(await profiles.get(id)))
          throw new CliError(
            'CP_NOT_FOUND',
            `no profile ${id}; \`cpctrl profile list\` lists them`,
          );
        await profiles.delete(id);
        if (ctx.json) printJson({ id, deleted: true });
        else process.stdout.write(`profile ${id} deleted\n`);
      }),
    );
}
