import { TextDecoder } from 'node:util';
import { readTaskLog, type TaskLogEvent } from '@computepods/bus';
import { buckets, TaskLogStream, TaskRecord, TERMINAL_STATES } from '@computepods/protocol';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { CliError } from '../output.js';
import { withBus } from '../with-bus.js';

// A follow of a task that ended without its runner finishing the log stops this long after.
const ABANDON_AFTER_MS = 30_000;

function offsetArg(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0)
    throw new InvalidArgumentError('a byte offset: a whole number, 0 or more');
  return n;
}

/**
 * `cpctrl logs [-f] TASK`: a task's output from the project's task-log stream on NATS, so it
 * works from any machine with the project's credentials, whichever runner ran the task.
 */
export function logsCommand(program: Command): void {
  program
    .command('logs')
    .argument('<task>', 'task id (see `cpctrl task list`)')
    .description(
      "print a task's stdout and stderr, as its runner published them on NATS (from any machine); -f follows them until the task ends",
    )
    .option('-f, --follow', 'keep printing as the task writes, until it ends', false)
    .addOption(
      new Option('--stream <name>', 'only this output (default both)').choices(
        TaskLogStream.options,
      ),
    )
    .option('--from <offset>', 'start at this byte offset of each output', offsetArg, 0)
    .addHelpText(
      'after',
      `
The task's stdout goes to stdout and its stderr to stderr; notes (a restart of the task, a log
cut at its cap, bytes no longer kept) go to stderr as lines starting with "cpctrl:".
With -o json every event is one JSON line on stdout:
  {"kind":"data","stream":"stdout","offset":0,"attempt":1,"text":"..."}
  {"kind":"restart"|"truncated"|"missing"|"end", "stream":..., "offset":..., ...}
Offsets count bytes of each output; --from resumes where a previous run stopped (the next
offset is a data event's offset plus its length in bytes).
Logs are kept for a day by default (CP_TASK_LOG_MAX_AGE_S) and cut at 4 MiB per output
(the runner's CP_TASK_LOG_MAX_BYTES).

Examples:
  cpctrl logs -f TASK
  cpctrl logs TASK --stream stderr
  cpctrl -o json logs TASK --from 4096 | jq -r 'select(.kind=="data") | .text'`,
    )
    .action(
      async (
        taskId: string,
        opts: { follow: boolean; stream?: TaskLogStream; from: number },
        cmd: Command,
      ) =>
        withBus(cmd, async (bus, ctx) => {
          const kv = await bus.kv(buckets.tasks(ctx.project), TaskRecord, { history: 5 });
          const rec = (await kv.get(taskId).catch(() => undefined))?.value;
          if (!rec)
            throw new CliError(
              'CP_UNKNOWN_TASK',
              `no task ${taskId} in project ${ctx.project}; \`cpctrl task list\` shows the tasks`,
            );
          const decoders = new Map<string, TextDecoder>();
          const out = (e: TaskLogEvent) => {
            if (ctx.json) {
              if (e.kind === 'sofar') return;
              const { data: _d, ...rest } = e as TaskLogEvent & { data?: Buffer };
              const line =
                e.kind === 'data'
                  ? {
                      ...rest,
                      bytes: e.data.length,
                      text: decoderOf(decoders, e.stream).decode(e.data, { stream: true }),
                    }
                  : rest;
              process.stdout.write(`${JSON.stringify({ taskId, ...line })}\n`);
              return;
            }
            if (e.kind === 'data') {
              (e.stream === 'stdout' ? process.stdout : process.stderr).write(e.data);
              return;
            }
            const note = noteOf(e);
            if (note) process.stderr.write(`cpctrl: ${taskId} ${e.stream}: ${note}\n`);
          };
          await readTaskLog(bus, {
            queue: rec.queue ?? rec.task.resource,
            taskId,
            streams: opts.stream ? [opts.stream] : TaskLogStream.options,
            from: opts.from,
            follow: opts.follow,
            record: async () => (await kv.get(taskId))?.value,
            abandoned: async () => {
              const now = (await kv.get(taskId))?.value;
              return (
                !now ||
                (TERMINAL_STATES.includes(now.state) &&
                  Date.now() - Date.parse(now.updated) > ABANDON_AFTER_MS)
              );
            },
            onEvent: out,
          });
        }),
    );
}

function decoderOf(decoders: Map<string, TextDecoder>, stream: string): TextDecoder {
  let d = decoders.get(stream);
  if (!d) {
    d = new TextDecoder();
    decoders.set(stream, d);
  }
  return d;
}

function noteOf(e: TaskLogEvent): string | undefined {
  switch (e.kind) {
    case 'restart':
      return `the task started over (attempt ${e.attempt}); its new output follows`;
    case 'truncated':
      return `cut at ${e.limitBytes} bytes (the runner's CP_TASK_LOG_MAX_BYTES); later output is not kept`;
    case 'missing':
      return `${e.bytes} bytes at offset ${e.offset} are no longer kept (older than the log retention, or the log stream was full)`;
    case 'end':
      if (!e.state) return 'the task ended, but its runner did not finish the log (it stopped?)';
      return e.droppedBytes
        ? `${e.state}${e.exitCode !== undefined && e.exitCode !== null ? ` (exit ${e.exitCode})` : ''}; ${e.droppedBytes} bytes past the cap not kept`
        : undefined;
    default:
      return undefined;
  }
}
