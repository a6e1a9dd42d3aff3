import { StatusReply, statusWithAllArtefacts } from '@computepods/protocol';
import type { Command } from 'commander';
import { connectBus, type GlobalOptions, resolveContext } from '../context.js';
import { discoverServices } from '../discover.js';
import { printJson, printTable } from '../output.js';

export function statusCommand(program: Command): void {
  program
    .command('status')
    .description(
      "show the project's services (seen through $SRV) and a summary of its artefacts' states; with --artefacts every artefact (read page by page)",
    )
    .option('-a, --artefacts', 'list every artefact with its state too')
    .option('--prefix <path>', 'with --artefacts: only paths starting with this')
    .action(async (opts: { artefacts?: boolean; prefix?: string }, cmd: Command) => {
      const ctx = resolveContext(cmd.optsWithGlobals<GlobalOptions>());
      const bus = await connectBus(ctx);
      try {
        const services = await discoverServices(bus.nc, ctx.project);
        const ask = (req: object) => bus.request('status', req, StatusReply);
        const status = await (opts.artefacts
          ? statusWithAllArtefacts(ask, opts.prefix === undefined ? {} : { prefix: opts.prefix })
          : ask({})
        ).catch((err: Error) => err);
        if (ctx.json) {
          printJson({
            ...(status instanceof Error ? { majordomo: { error: status.message } } : status),
            project: ctx.project,
            services,
          });
          if (status instanceof Error) process.exitCode = 1;
          return;
        }
        process.stdout.write(`project ${ctx.project} on ${ctx.natsUrl}\n\nSERVICES\n`);
        if (services.length === 0)
          process.stdout.write('  none answering $SRV (is `pnpm cp-up` running?)\n');
        else
          printTable(
            services.map((s) => {
              const eps = s.endpoints ?? [];
              const handled = eps.reduce((n, e) => n + e.num_requests, 0);
              const errors = eps.reduce((n, e) => n + e.num_errors, 0);
              return [s.name, s.id, s.version, String(handled), String(errors), s.started ?? ''];
            }),
            ['NAME', 'ID', 'VERSION', 'HANDLED', 'ERRORS', 'STARTED'],
          );
        process.stdout.write('\nARTEFACTS\n');
        if (status instanceof Error) {
          process.stdout.write(`  ${status.message}\n`);
          process.exitCode = 1;
          return;
        }
        const { summary } = status;
        const counts = Object.entries(summary.byStatus).map(([state, n]) => `${n} ${state}`);
        process.stdout.write(
          `  ${summary.artefacts} artefact(s)${counts.length ? `: ${counts.join(', ')}` : ''}\n`,
        );
        if (opts.artefacts)
          printTable(
            status.artefacts.map((a) => [
              a.path,
              a.status,
              a.sha256?.slice(0, 12) ?? '-',
              a.producer ?? '(source)',
              a.error ?? '',
            ]),
            ['PATH', 'STATE', 'SHA256', 'PRODUCER', 'NOTE'],
          );
        const busy = summary.running + summary.queued;
        process.stdout.write(`\n${status.idle ? 'idle' : `${busy} build(s) queued or running`}\n`);
        for (const nc of status.nonConvergent) {
          process.stdout.write(
            `not converging after ${nc.passes} passes: ${nc.artefacts.join(', ')}\n`,
          );
        }
      } finally {
        await bus.close();
      }
    });
}
