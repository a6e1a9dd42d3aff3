import { decode } from '@computepods/bus';
import {
  type ArtefactRecord,
  ArtefactReply,
  BuildArtefactReply,
  subjects,
} from '@computepods/protocol';
import type { Command } from 'commander';
import { connectBus, type GlobalOptions, resolveContext } from '../context.js';
import { CliError, printJson } from '../output.js';
import { Progress } from '../progress.js';

const DONE = new Set(['up_to_date', 'failed', 'cancelled', 'not_converging', 'source']);

export function buildCommand(program: Command): void {
  program
    .command('build')
    .argument('<artefact>', 'project-relative path of the artefact, e.g. out/hello.upper')
    .description('(re)build an artefact and what it depends on, and wait until it is up to date')
    .option('-f, --force', 'rebuild even if it is up to date', false)
    .option('-w, --watch', 'wait with a progress display until it is up to date (the default)')
    .option('--no-wait', 'return as soon as MajorDomo accepted the request')
    .option('--timeout <seconds>', 'give up waiting after this long', '600')
    .action(
      async (
        artefact: string,
        opts: { force: boolean; wait: boolean; timeout: string },
        cmd: Command,
      ) => {
        const ctx = resolveContext(cmd.optsWithGlobals<GlobalOptions>());
        const bus = await connectBus(ctx);
        const progress = new Progress(!ctx.json && process.stderr.isTTY === true);
        try {
          // Subscribe before asking, so no state change can slip between the reply and the watch.
          const states = bus.nc.subscribe(subjects.artefactState(ctx.project));
          const reply = await bus.request(
            'build',
            { path: artefact, force: opts.force },
            BuildArtefactReply,
            // A goal no declared rule produces is asked of the chefs, goal by goal (a few s each).
            { timeoutMs: 30_000 },
          );
          if (!reply.accepted) throw new CliError('CP_BUILD_REFUSED', reply.message);
          if (!opts.wait || DONE.has(reply.status)) {
            states.unsubscribe();
            return finish(ctx.json, reply.path, reply.status, reply.message, progress);
          }
          progress.update(`${artefact}: ${reply.status}`);
          // The artefact's record alone (a status lists the records only page by page).
          const recordOf = async (path: string) =>
            (await bus.request('artefact', { path }, ArtefactReply)).artefact;
          const deadline = setTimeout(() => states.unsubscribe(), Number(opts.timeout) * 1000);
          // Poll once in a while too: an event could be missed across a NATS reconnect.
          const poll = setInterval(() => {
            recordOf(reply.path)
              .then((a) => {
                if (a && DONE.has(a.status)) states.unsubscribe();
              })
              .catch(() => undefined);
          }, 2_000);
          let last: ArtefactRecord | undefined;
          watch: for await (const m of states) {
            let records: ArtefactRecord[];
            try {
              records = decode(m.data, ['artefact.states'], ctx.project).body.records;
            } catch {
              // Not a state change (any member of the project may publish here): skipped. It
              // used to throw out of the loop (m.json()), and cpctrl hung with the error printed.
              continue;
            }
            // One turn's changes of MajorDomo, in order.
            for (const rec of records) {
              if (rec.path !== reply.path) {
                progress.update(`${artefact}: building ${rec.path} (${rec.status})`);
                continue;
              }
              last = rec;
              progress.update(`${artefact}: ${rec.status}`);
              if (DONE.has(rec.status)) break watch;
            }
          }
          clearTimeout(deadline);
          clearInterval(poll);
          const final = last ?? (await recordOf(reply.path).catch(() => undefined));
          if (!final || !DONE.has(final.status)) {
            throw new CliError(
              'CP_BUILD_TIMEOUT',
              `${artefact} still ${final?.status ?? 'unknown'} after ${opts.timeout}s; see cpctrl status`,
            );
          }
          finish(ctx.json, final.path, final.status, final.error ?? '', progress, final.sha256);
        } finally {
          progress.done();
          await bus.close();
        }
      },
    );
}

function finish(
  json: boolean,
  path: string,
  status: string,
  message: string,
  progress: Progress,
  sha256?: string | null,
): void {
  progress.done();
  if (json) printJson({ path, status, message, ...(sha256 ? { sha256 } : {}) });
  else process.stdout.write(`${path}: ${status}${message ? ` (${message})` : ''}\n`);
  if (status === 'failed' || status === 'cancelled' || status === 'not_converging')
    process.exitCode = 1;
}
