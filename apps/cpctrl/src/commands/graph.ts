import { BuildsReply, CancelReply, GraphReply } from '@computepods/protocol';
import type { Command } from 'commander';
import { CliError, printJson, printTable } from '../output.js';
import { withBus } from '../with-bus.js';

export function graphCommand(program: Command): void {
  program
    .command('graph')
    .description('the dependency graph (cycles marked as components); --dot for Graphviz')
    .option('--dot', 'print Graphviz DOT (pipe into `dot -Tsvg`)', false)
    .option('--plan', 'with --dot: only the pending work (what a build would run now)', false)
    .action(async (opts: { dot: boolean; plan: boolean }, cmd: Command) =>
      withBus(cmd, async (bus, ctx) => {
        const r = await bus.request(
          'graph',
          { format: opts.dot ? 'dot' : 'json', plan: opts.plan },
          GraphReply,
        );
        if (opts.dot && !ctx.json) process.stdout.write(`${String(r.graph).trimEnd()}\n`);
        else printJson(r.graph);
      }),
    );
}

export function buildsCommand(program: Command): void {
  program
    .command('builds')
    .description('builds in flight')
    .action(async (_opts, cmd: Command) =>
      withBus(cmd, async (bus, ctx) => {
        const builds = await bus.request('builds', {}, BuildsReply);
        if (ctx.json) return printJson(builds);
        if (builds.length === 0) return void process.stdout.write('no builds in flight\n');
        printTable(
          builds.map((b) => [
            b.taskId,
            b.chef,
            String(b.pass),
            b.cyclic ? `cycle ${b.component}` : '',
            b.buildId,
          ]),
          ['TASK', 'CHEF', 'PASS', 'COMPONENT', 'BUILD'],
        );
      }),
    );
  program
    .command('cancel')
    .argument('<task>', 'task id of a build in flight (see `cpctrl builds`)')
    .description(
      'cancel a build in flight; it is held (not built again) until an input changes or `cpctrl build` asks for it',
    )
    .action(async (taskId: string, _opts, cmd: Command) =>
      withBus(cmd, async (bus, ctx) => {
        const r = await bus.request('cancel', { taskId }, CancelReply);
        if (!r.cancelled)
          throw new CliError(
            'CP_UNKNOWN_BUILD',
            `no build in flight for ${taskId}; \`cpctrl builds\` lists them`,
          );
        if (ctx.json) printJson(r);
        else
          process.stdout.write(
            `cancelled ${taskId} (held: not built again until an input changes or \`cpctrl build\` asks for it)\n`,
          );
      }),
    );
}
