import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { buckets, streams, subjects, TaskRecord } from '@computepods/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Stack } from './stack.js';

/**
 * In the secure default (the runner with its role's credentials alone): a runner killed with a
 * task message pulled and not recorded has it delivered again by the runner restarted in its
 * place, long before the (ten-minute) ack wait. The runner's own tests cover the details
 * (services/runner/src/runner-reclaim.test.ts); this checks its role may do it.
 */
describe('a restarted runner reclaims what it had pulled, with its role’s credentials', () => {
  let stack: Stack;
  const env = { CP_RUNNER_ACK_WAIT_MS: String(10 * 60_000) };

  beforeAll(async () => {
    stack = await Stack.start('reclaim');
    await stack.start('runner', env);
  }, 120_000);
  afterAll(async () => {
    await stack?.[Symbol.asyncDispose]();
  });

  it('runs the pulled task once after the restart', { timeout: 120_000 }, async () => {
    const tasks = await stack.bus.kv(buckets.tasks(stack.project), TaskRecord, { history: 5 });
    const stream = streams.tasks(stack.project);
    const info = () => stack.bus.jsm.consumers.info(stream, 'runner-local');
    const poll = async (what: string, ok: () => Promise<boolean>) => {
      const end = performance.now() + 30_000;
      while (!(await ok())) {
        if (performance.now() > end)
          throw new Error(`timed out waiting for ${what}\n${stack.logs()}`);
        await sleep(50);
      }
    };
    const dir = join(stack.workspace, 'reclaim');
    mkdirSync(dir, { recursive: true });

    // Only a reclaim can hand the message out again within this test's time.
    expect((await info()).config.ack_wait).toBe(10 * 60_000 * 1_000_000);
    // The runner is killed, and its pull requests end with it (in PULL.expires, 5 s, at most).
    // The task's message is then pulled from the runner's consumer and left unacknowledged, as
    // a runner killed between its pull and its record leaves it: the server holds the same
    // state. (Freezing the runner and publishing to its open pull request raced that request's
    // expiry: fresh-clone CI run 143 timed out with the message never delivered.)
    await stack.procs.get('runner')!.kill9();
    await poll('the killed runner’s pull requests to end', async () => {
      return (await info()).num_waiting === 0;
    });
    await stack.bus.publish('task.submitted', subjects.tasks(stack.project, 'local'), {
      taskId: 'pulled',
      resource: 'local',
      command: `echo run >> ${dir}/runs`,
      cwd: dir,
      env: {},
      gpu: false,
    });
    const consumer = await stack.bus.js.consumers.get(stream, 'runner-local');
    const pulled = await consumer.next({ expires: 10_000 });
    expect(pulled?.subject).toBe(subjects.tasks(stack.project, 'local'));
    expect((await info()).num_ack_pending).toBe(1);

    await stack.start('runner', env);
    await poll(
      'the task to run',
      async () => (await tasks.get('pulled'))?.value.state === 'finished',
    );
    await poll('its message acknowledged', async () => (await info()).num_ack_pending === 0);
    expect(readFileSync(join(dir, 'runs'), 'utf8')).toBe('run\n');
    const second = stack.procs.get('runner')!.output;
    expect(second).toMatch(/pulled and never acknowledged/);
    expect(second).not.toMatch(/Permissions Violation/i);
  });
});
