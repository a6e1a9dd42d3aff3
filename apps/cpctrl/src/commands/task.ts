import {
  buckets,
  envelope,
  subjects,
  TaskControlReply,
  TaskRecord,
  TaskState,
} from '@computepods/protocol';
import type { Command } from 'commander';
import { CliError, printJson, printTable } from '../output.js';
import { withBus } from '../with-bus.js';

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
            // Ended, its processes signalled and maybe not gone yet (a TERM trap): say so.
            t.stopping ? `${t.state} (stopping)` : t.state,
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
          const reply = TaskControlReply.parse(msg.json());
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
