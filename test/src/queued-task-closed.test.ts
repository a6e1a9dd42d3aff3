import { buckets, streams, TaskRecord } from '@computepods/protocol';
import { sha256, untilDefined } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Stack } from './stack.js';
import { BuildLog } from './watch-builds.js';

/**
 * A cancelled build's task still in its queue, no runner having taken it, when its chef died: no
 * chef reports the build's end, so MajorDomo sends the step's next build once CP_CANCEL_WAIT_MS is
 * over. Runners sharing a queue (pilot workers, replicas) do not stop each other's older task of
 * a step, and the older one had no record for MajorDomo to kill: taken up later, it ran beside
 * the newer and could write its outputs last. MajorDomo now closes it first (records it killed),
 * and a runner taking it from the queue leaves it. Real nats-server, MajorDomo, chef, runner and
 * fswatcher processes; the runner starts only once both tasks are queued.
 */
describe("a cancelled build's task still queued when its chef died", () => {
  let stack: Stack;
  let log: BuildLog;
  let chefFile = '';
  const chefEnv = () => ({ CP_CHEF: 'text', CP_CHEF_DEFINITION: chefFile });

  beforeAll(async () => {
    stack = await Stack.start('queuedclose');
    log = await BuildLog.start(stack.bus);
    chefFile = stack.writeUpperChef(
      `tr a-z A-Z < {in0} > {out0} && cat {in0} >> ${stack.ledger().path}`,
    );
    await Promise.all([
      // The dead chef is not retired meanwhile (3 PINGs unanswered would do it): the wait for the
      // cancelled build's end is what runs out, and the next build is sent to the chef's queue.
      stack.start('majordomo', {
        CP_CANCEL_WAIT_MS: '1500',
        CP_CHEF_PING_MS: '600000',
        CP_CHEF_TIMEOUT_MS: '600000',
      }),
      stack.start('chef', chefEnv()),
      stack.start('fswatcher'),
    ]);
  }, 120_000);
  afterAll(async () => {
    log?.close();
    await stack?.[Symbol.asyncDispose]();
  });

  it('records it killed before the next build goes; the runner that takes it later leaves it', async () => {
    const tasks = await stack.bus.kv(buckets.tasks(stack.project), TaskRecord, { history: 5 });
    const queued = async () =>
      (await stack.bus.jsm.streams.info(streams.tasks(stack.project))).state.messages;
    stack.write('src/a.txt', 'old\n');
    const first = await untilDefined(
      'the first build of upper:a',
      () => log.requestsFor('upper:a')[0],
      30_000,
    );
    // Its chef submitted its task (no runner serves the queue yet), then died.
    await untilDefined('its task queued', async () => ((await queued()) >= 1 ? true : undefined));
    await stack.kill9('chef');
    stack.write('src/a.txt', 'new\n');
    const closed = await untilDefined(
      'the first build’s task recorded',
      async () => (await tasks.get(`b-${first.buildId}`))?.value,
      30_000,
    );
    expect(closed).toMatchObject({ state: 'killed', task: { buildId: first.buildId } });
    expect(closed.reason).toMatch(/^cancelled before any runner took it/);
    expect(closed.runner).toBeUndefined();
    // Only then the step's next build (it waits in the chef's queue while the chef is down).
    const next = await untilDefined(
      'the next build of upper:a',
      () => log.requestsFor('upper:a')[1],
      30_000,
    );
    expect(next.inputs).toEqual({ 'src/a.txt': sha256('new\n') });
    await stack.start('chef', chefEnv());
    await untilDefined('both tasks queued', async () => ((await queued()) >= 2 ? true : undefined));
    const runner = await stack.start('runner');
    const built = await stack.until('out/a.upper', (a) => a.sha256 === sha256('NEW\n'));
    expect(built.buildId).toBe(next.buildId);
    await untilDefined('the queue emptied', async () =>
      (await queued()) === 0 ? true : undefined,
    );
    // The runner took the older task from the queue and left it: one run, the newer build's.
    expect(runner.output).toMatch(
      new RegExp(
        `"taskId":"b-${first.buildId}"[^\\n]*task already has a record; not running it again`,
      ),
    );
    expect(stack.ledger().read()).toBe('new\n');
    expect((await tasks.get(`b-${first.buildId}`))?.value).toEqual(closed);
    // Its (empty) logs end at once for a follower; the task list shows it killed.
    const logs = await stack.cpctrl(['-o', 'json', 'logs', '-f', `b-${first.buildId}`]);
    expect(logs.code, logs.stderr).toBe(0);
    expect(logs.stdout).not.toContain('"kind":"data"');
    const listed = await stack.cpctrl(['-o', 'json', 'task', 'list']);
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toContain(`b-${first.buildId}`);
  }, 120_000);
});
