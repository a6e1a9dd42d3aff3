import {
  ArtefactReply,
  ArtefactStatus,
  StatusReply,
  statusWithAllArtefacts,
  WhyReply,
} from '@computepods/protocol';
import type { Command } from 'commander';
import { CliError, printJson, printTable } from '../output.js';
import { withBus } from '../with-bus.js';

export function artefactCommand(program: Command): void {
  const artefact = program
    .command('artefact')
    .alias('artefacts')
    .description('artefacts: list, show, why');
  artefact
    .command('list')
    .description('list artefacts and their states')
    .option('-s, --status <status>', `only this state (${ArtefactStatus.options.join(', ')})`)
    .option('--prefix <path>', 'only paths starting with this')
    .action(async (opts: { status?: string; prefix?: string }, cmd: Command) =>
      withBus(cmd, async (bus, ctx) => {
        if (opts.status && !ArtefactStatus.safeParse(opts.status).success) {
          throw new CliError(
            'CP_BAD_REQUEST',
            `--status ${JSON.stringify(opts.status)}: one of ${ArtefactStatus.options.join(', ')}`,
          );
        }
        const s = await statusWithAllArtefacts(
          (req) => bus.request('status', req, StatusReply),
          opts.prefix === undefined ? {} : { prefix: opts.prefix },
        );
        const list = s.artefacts.filter(
          (a) =>
            (!opts.status || a.status === opts.status) &&
            (!opts.prefix || a.path.startsWith(opts.prefix)),
        );
        if (ctx.json) return printJson(list);
        printTable(
          list.map((a) => [
            a.path,
            a.status,
            a.sha256?.slice(0, 12) ?? '-',
            String(a.size ?? '-'),
            a.producer ?? '(source)',
            a.pods.join(','),
          ]),
          ['PATH', 'STATE', 'SHA256', 'SIZE', 'PRODUCER', 'PODS'],
        );
      }),
    );
  artefact
    .command('show')
    .argument('<path>', 'project-relative path')
    .description('one artefact: hash, size, producer, pods, and why it was rebuilt')
    .action(async (path: string, _opts, cmd: Command) =>
      withBus(cmd, async (bus, ctx) => {
        const r = await bus.request('artefact', { path }, ArtefactReply);
        if (ctx.json) return printJson(r);
        const a = r.artefact;
        const rows: [string, string][] = [
          ['path', a.path],
          ['state', a.status],
          ['sha256', a.sha256 ?? '-'],
          ['size', String(a.size ?? '-')],
          ['producer', r.producer ?? '(source)'],
          ['pods', a.pods.join(', ') || '-'],
          ['updated', a.updated],
        ];
        if (a.buildId) rows.push(['build', a.buildId]);
        if (a.error) rows.push(['error', a.error]);
        for (const [k, v] of rows) process.stdout.write(`${k.padEnd(9)} ${v}\n`);
        if (r.why.length) {
          process.stdout.write('why\n');
          for (const w of r.why) process.stdout.write(`  ${w.artefact}: ${w.because}\n`);
        }
      }),
    );
  artefact
    .command('why')
    .argument('<path>', 'project-relative path')
    .description('the chain of changed inputs that made an artefact dirty')
    .action(async (path: string, _opts, cmd: Command) =>
      withBus(cmd, async (bus, ctx) => {
        const why = await bus.request('why', { path }, WhyReply);
        if (ctx.json) return printJson(why);
        if (why.length === 0) {
          // Nothing makes it dirty: say what it is instead of an empty answer.
          const r = await bus.request('artefact', { path }, ArtefactReply);
          const what = r.producer
            ? `${r.artefact.status}, built by ${r.producer}`
            : 'a source (no rule produces it)';
          process.stdout.write(`${path}: ${what}; no changed input makes it out of date\n`);
        }
        for (const [i, w] of why.entries())
          process.stdout.write(`${'  '.repeat(i)}${w.artefact}: ${w.because}\n`);
      }),
    );
}
