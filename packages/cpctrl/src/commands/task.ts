import {
  buckets,
  envelope,
  subjects,
  TaskRecord,
  TaskState,
  TERMINAL_STATES,
} from '@computepods/protocol';
import type { Command } from 'commander';
import { z } from 'zod';
import { CliError, printJson, printTable } from '../output.js';
import { withBus } from '../with-bus.js';

const ControlReply = z.object({
  ok: z.boolean(),
  result: z.object({ taskId: z.string(), state: z.string() }).optional(),
  error: z.object({ code: z.string(), message: z.string() }).optional(),
});

export function taskCommand(program: Command): void {
  const task = program
    .command('task')
    .alias('tasks')
    .description('tasks on the runners: list, pause, resume, kill');
  task
    .command('list')
    .description('task records, newest first')
    .option('-s, --state <state>', `only this state (${TaskState.options.join(', ')})`)
    .option('-n, --limit <n>', 'at most this many', '50')
    .action(async (opts: { state?: string; limit: string }, cmd: Command) =>
      withBus(cmd, async (bus, ctx) => {
        const kv = await bus.kv(buckets.tasks(ctx.project), TaskRecord, { history: 5 });
        const all = [...(await kv.entries()).values()]
          .map((v) => v.value)
          .filter((t) => !opts.state || t.state === opts.state)
          .sort((a, b) => b.updated.localeCompare(a.updated))
          .slice(0, Number(opts.limit));
        if (ctx.json) return printJson(all);
        printTable(
          all.map((t) => [
            t.task.taskId,
            t.state,
            t.task.resource,
            t.exitCode === undefined || t.exitCode === null ? '' : String(t.exitCode),
            t.updated,
            t.reason ?? '',
          ]),
          ['TASK', 'STATE', 'RESOURCE', 'EXIT', 'UPDATED', 'REASON'],
        );
      }),
    );
  for (const action of ['pause', 'resume', 'kill'] as const) {
    task
      .command(action)
      .argument('<task>', 'task id (see `cpctrl task list`)')
      .description(
        action === 'pause'
          ? 'pause a waiting task (it holds no connection while paused)'
          : action === 'resume'
            ? 'resume a paused task where it was'
            : 'kill a task (SIGTERM then SIGKILL to its process group, or scancel)',
      )
      .action(async (taskId: string, _opts, cmd: Command) =>
        withBus(cmd, async (bus, ctx) => {
          const data = JSON.stringify(
            envelope(
              'task.control',
              { taskId, action },
              { project: ctx.project, source: 'cpctrl' },
            ),
          );
          const msg = await bus.nc
            .request(subjects.taskControl(ctx.project), data, { timeout: 5_000 })
            .catch(() => undefined);
          if (!msg)
            throw new CliError(
              'CP_UNKNOWN_TASK',
              `no runner holds task ${taskId} (or none answered); \`cpctrl task list\` shows the tasks`,
            );
          const reply = ControlReply.parse(msg.json());
          if (!reply.ok)
            throw new CliError(
              reply.error?.code ?? 'CP_TASK_CONTROL',
              reply.error?.message ?? `${action} refused`,
            );
          if (ctx.json) printJson(reply.result);
          else process.stdout.write(`${taskId}: ${reply.result?.state}\n`);
        }),
      );
  }
}

export function logsCommand(program: Command): void {
  program
    .command('logs')
    .argument('<task>', 'task id (see `cpctrl task list`)')
    .description("print a task's output; -f follows it until the task ends")
    .option('-f, --follow', 'keep printing as the task writes', false)
    .option('--stream <name>', 'stdout or stderr', 'stderr')
    .action(async (taskId: string, opts: { follow: boolean; stream: string }, cmd: Command) =>
      withBus(cmd, async (bus, ctx) => {
        if (opts.stream !== 'stdout' && opts.stream !== 'stderr')
          throw new Error('--stream must be stdout or stderr');
        const kv = await bus.kv(buckets.tasks(ctx.project), TaskRecord, { history: 5 });
        const first = (await kv.get(taskId))?.value;
        if (!first)
          throw new CliError(
            'CP_UNKNOWN_TASK',
            `no task ${taskId}; \`cpctrl task list\` shows the tasks`,
          );
        const { open } = await import('node:fs/promises');
        let offset = 0;
        const pump = async (rec: TaskRecord): Promise<void> => {
          const path = opts.stream === 'stdout' ? rec.stdoutPath : rec.stderrPath;
          if (!path) return;
          const fh = await open(path, 'r').catch(() => {
            throw new CliError(
              'CP_NO_LOG',
              `the log of ${taskId} is at ${path} on the runner's machine, not readable here`,
            );
          });
          try {
            const buf = Buffer.alloc(64 * 1024);
            for (;;) {
              const { bytesRead } = await fh.read(buf, 0, buf.length, offset);
              if (bytesRead === 0) break;
              offset += bytesRead;
              const chunk = buf.subarray(0, bytesRead);
              if (ctx.json)
                printJson({
                  taskId,
                  stream: opts.stream,
                  offset: offset - bytesRead,
                  data: chunk.toString('utf8'),
                });
              else process.stdout.write(chunk);
            }
          } finally {
            await fh.close();
          }
        };
        let rec = first;
        await pump(rec);
        while (opts.follow && !TERMINAL_STATES.includes(rec.state)) {
          await new Promise((r) => setTimeout(r, 250));
          rec = (await kv.get(taskId))?.value ?? rec;
          await pump(rec);
        }
      }),
    );
}
