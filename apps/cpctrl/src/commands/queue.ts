import { resourceWarning, shownProfile, shownResource } from '@computepods/protocol';
import type { Command } from 'commander';
import { CliError, printJson, printTable } from '../output.js';
import { withRegistry } from '../with-registry.js';

function parseConcurrency(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1)
    throw new CliError('CP_INVALID', `--concurrency takes a whole number ≥ 1, not ${value}`);
  return n;
}

export const PROJECT_NOTE =
  '\nProject: the current one (cpctrl project use NAME), or -p/--project NAME for this command.';

/** `cpctrl queue …`: bind the current project to resources (resource + profile + concurrency). */
export function queueCommand(program: Command): void {
  const queue = program
    .command('queue')
    .alias('queues')
    .description('queues: bind the current project (or --project P) to a resource and profile')
    .addHelpText(
      'after',
      `
A queue binds a project to a resource (and the profile its jobs run under) with a concurrency
quota; its tasks go to cp.<project>.tasks.<queue>, served by a runner started with
CP_QUEUE=<queue>. A resource or profile a queue uses cannot be deleted, and a queue cannot be
bound again otherwise until it is deleted.

Examples:
  cpctrl queue create default --resource local
  cpctrl queue create gpu --resource slurm-cluster --profile slurm-sudo-profile --concurrency 4
  cpctrl queue list
  cpctrl queue delete gpu`,
    );
  queue
    .command('create')
    .argument('<name>', 'queue name: 1-63 of a-z 0-9 - _')
    .requiredOption('--resource <id>', 'the resource (cpctrl resource list)')
    .option('--profile <id>', 'the profile its jobs run under; needed but for a local resource')
    .option('--concurrency <n>', 'tasks of this project running at once on it', parseConcurrency, 8)
    .description('bind the project to a resource (+ profile): a queue')
    .action(
      async (
        name: string,
        opts: { resource: string; profile?: string; concurrency: number },
        cmd: Command,
      ) =>
        withRegistry(cmd, async (projects, ctx) => {
          const { resolved, created } = await projects.createQueue(ctx.project, {
            name,
            resource: opts.resource,
            ...(opts.profile ? { profile: opts.profile } : {}),
            concurrency: opts.concurrency,
          });
          const warning = resourceWarning(resolved.resource);
          if (ctx.json)
            return printJson({
              project: ctx.project,
              created,
              queue: resolved.queue,
              resource: shownResource(resolved.resource),
              ...(resolved.profile ? { profile: shownProfile(resolved.profile) } : {}),
              ...(warning ? { warning } : {}),
            });
          const q = resolved.queue;
          process.stdout.write(
            `queue ${q.name} of project ${ctx.project} ${created ? 'bound' : 'was already bound'} to resource ${q.resource}${q.profile ? `, profile ${q.profile}` : ''}, concurrency ${q.concurrency}; a runner serves it with CP_PROJECT=${ctx.project} CP_QUEUE=${q.name} and the credentials of \`cpctrl creds create runner --name ${q.name}\`${warning ? `\nnote: ${warning}` : ''}\n`,
          );
        }),
    );
  queue
    .command('list')
    .description("the project's queues")
    .action(async (_o, cmd: Command) =>
      withRegistry(cmd, async (projects, ctx) => {
        const all = await projects.queues(ctx.project);
        if (ctx.json) return printJson(all);
        printTable(
          all.map((q) => [q.name, q.resource, q.profile ?? '-', String(q.concurrency)]),
          ['NAME', 'RESOURCE', 'PROFILE', 'CONCURRENCY'],
        );
      }),
    );
  queue
    .command('delete')
    .argument('<name>', 'queue name')
    .option(
      '--release-stale',
      'also release a use held by a create that stopped before recording the queue (only while no create of it runs)',
    )
    .description('unbind a queue (its resource and profile can then be deleted)')
    .action(async (name: string, opts: { releaseStale?: boolean }, cmd: Command) =>
      withRegistry(cmd, async (projects, ctx) => {
        const removed = await projects.deleteQueue(ctx.project, name, {
          releaseStale: !!opts.releaseStale,
        });
        if (ctx.json) return printJson({ project: ctx.project, queue: name, deleted: true });
        process.stdout.write(
          removed
            ? `queue ${name} of project ${ctx.project} deleted\n`
            : `stale uses by queue ${name} of project ${ctx.project} released\n`,
        );
      }),
    );
  for (const c of queue.commands) c.addHelpText('after', PROJECT_NOTE);
}
