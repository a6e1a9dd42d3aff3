// The runner bench's client in a process of its own (as MajorDomo or a chef would be), so the
// runner's process CPU is the runner's alone: it publishes a batch of no-op tasks (200 per round
// of acks) when the bench asks, and answers once every one of them has ended.
// With `spaced`, one task at a time running `spaced.command`, each published once the one before
// ended (as a chef's compiles come when lanes are free: pnpm bench cbuild).
// argv: NATS_URL PROJECT QUEUE CWD. IPC in: {first, n, spaced?}; out: "ready", then {finished, failed}.
import { Bus, quietLogger } from '@computepods/bus';
import { subjects, type TaskSubmitted } from '@computepods/protocol';
import { z } from 'zod';

const [url, project, queue, cwd] = process.argv.slice(2);
if (!url || !project || !queue || !cwd)
  throw new Error('usage: client.ts NATS_URL PROJECT QUEUE CWD');
const Ask = z.object({
  first: z.number().int().nonnegative(),
  n: z.number().int().positive(),
  spaced: z.object({ command: z.string().min(1) }).optional(),
});

const logger = quietLogger('bench-client');
const client = await Bus.connect({ servers: url, service: 'bench', project, logger });
let finished = 0;
let failed = 0;
let onCount = () => {};
client.nc.subscribe(subjects.taskState(project), {
  callback: (_e, m) => {
    const { state } = (JSON.parse(new TextDecoder().decode(m.data)) as { body: { state: string } })
      .body;
    if (state === 'finished') finished++;
    else if (state === 'failed' || state === 'killed') failed++;
    onCount();
  },
});
await client.nc.flush();

const task = (i: number, command = 'true'): TaskSubmitted => ({
  taskId: `b${i}-${queue}`,
  resource: queue,
  command,
  cwd,
  env: {},
  gpu: false,
});

process.on('message', (raw) => {
  const { first, n, spaced } = Ask.parse(raw);
  void (async () => {
    finished = 0;
    failed = 0;
    if (spaced) {
      for (let i = 0; i < n; i++) {
        const ended = new Promise<void>((resolve) => {
          onCount = () => {
            if (finished + failed === i + 1) resolve();
          };
        });
        await client.publish(
          'task.submitted',
          subjects.tasks(project, queue),
          task(first + i, spaced.command),
        );
        await ended;
      }
      process.send?.({ finished, failed });
      return;
    }
    const all = new Promise<void>((resolve) => {
      onCount = () => {
        if (finished + failed === n) resolve();
      };
    });
    for (let i = 0; i < n; i += 200) {
      const published = [];
      for (let j = i; j < Math.min(n, i + 200); j++)
        published.push(
          client.publish('task.submitted', subjects.tasks(project, queue), task(first + j)),
        );
      await Promise.all(published);
    }
    await all;
    process.send?.({ finished, failed });
  })();
});
process.on('disconnect', () => {
  void client.close().finally(() => process.exit(0));
});
process.send?.('ready');
