import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type BuildResult, buckets, subjects, TaskRecord } from '@computepods/protocol';
import { sha256, until } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Stack } from './stack.js';

/**
 * A chef killed -9 while its task of a step runs: the task runs on at the runner, and the
 * restarted chef, asked for the step's next build (the inputs changed), knows nothing of it.
 * The next build's task ran beside it, ended first and was reported; the stale one then wrote
 * the older bytes over the output, and MajorDomo held a hash the workspace no longer had
 * (fresh-clone CI run 132, test/chaos: `mid/c.up` left with an older build's bytes, the older
 * task finished with no result). Now the runner runs one task of a step at a time: a newer one
 * kills the older and starts once nothing of it runs. Real nats-server, chef and runner.
 */
describe("a step's next build while a killed chef's task of it still runs", () => {
  let stack: Stack;
  let results: BuildResult[] = [];
  let chefFile = '';
  const gate = () => stack.dir.join('gate');
  const readOld = () => stack.dir.join('read-old');

  beforeAll(async () => {
    stack = await Stack.start('stepgap');
    // The old input's run waits for the gate, as a long compile would; the new one does not.
    // It says when it has read the old input (readOld): the test edits it only after that.
    results = await stack.startUpperChef(
      `c=$(cat {in0}); case "$c" in old*) touch ${readOld()}; while [ ! -e ${gate()} ]; do sleep 0.02; done;; esac; printf '%s\\n' "$c" | tr a-z A-Z > {out0}`,
    );
    chefFile = stack.dir.join('chef.yaml');
  }, 120_000);
  afterAll(async () => {
    await stack?.[Symbol.asyncDispose]();
  });

  it('kills the stale task before the new one runs: the output is the newest build', async () => {
    const tasks = await stack.bus.kv(buckets.tasks(stack.project), TaskRecord);
    const state = async (taskId: string) => (await tasks.get(taskId))?.value;
    const [older, newer] = ['01d0', '5ee5'].map((h) => h.repeat(8)) as [string, string];
    stack.write('src/a.txt', 'old\n');
    const seq = await stack.requestUpper(older, 'a', sha256('old\n'));
    // Recorded running is not enough: its command may not have read the input yet.
    await until(
      async () => existsSync(readOld()) && (await state(`b-${older}`))?.state === 'running',
      'the older task running, its old input read',
      30_000,
      () => stack.logs(),
    );
    await stack.kill9('chef');
    stack.write('src/a.txt', 'new\n');
    // MajorDomo's cancel of the older build reaches no chef (none holds it).
    await stack.cancelBuild(older, 'inputs changed', seq);
    await stack.start('chef', { CP_CHEF: 'text', CP_CHEF_DEFINITION: chefFile });
    await stack.requestUpper(newer, 'a', sha256('new\n'));
    await until(
      () => results.some((r) => r.buildId === newer),
      'the newer build result',
      30_000,
      () => stack.logs(),
    );
    // Whatever the older task still does once let go, it does now.
    writeFileSync(gate(), '');
    await until(
      async () =>
        ['finished', 'failed', 'killed'].includes((await state(`b-${older}`))?.state ?? ''),
      'the older task ended',
      30_000,
      () => stack.logs(),
    );
    const result = results.find((r) => r.buildId === newer);
    expect(result, JSON.stringify(result)).toMatchObject({ status: 'succeeded' });
    expect(result?.outputs['out/a.upper']?.sha256).toBe(sha256('NEW\n'));
    expect(readFileSync(join(stack.workspace, 'out/a.upper'), 'utf8')).toBe('NEW\n');
    const old = await state(`b-${older}`);
    expect(old?.state).toBe('killed');
    expect(old?.reason).toMatch(/superseded by task b-5ee5/);
    // The newer one ran once the older had ended.
    const ran = (await state(`b-${newer}`))?.history.find((h) => h.state === 'running')?.time;
    expect(ran && old && ran >= old.updated).toBe(true);
  }, 120_000);

  it("a live chef's build whose task a newer one of the step superseded is reported cancelled", async () => {
    const tasks = await stack.bus.kv(buckets.tasks(stack.project), TaskRecord);
    const build = 'ca11ed00'.repeat(2);
    rmSync(gate(), { force: true });
    stack.write('src/b.txt', 'old b\n');
    await stack.requestUpper(build, 'b', sha256('old b\n'));
    await until(
      async () => (await tasks.get(`b-${build}`))?.value.state === 'running',
      'the build running',
      30_000,
      () => stack.logs(),
    );
    // A task of the same step from elsewhere (a replica of the chef, a restarted one).
    await stack.bus.publish('task.submitted', subjects.tasks(stack.project, 'local'), {
      taskId: 'other-b',
      resource: 'local',
      command: 'true',
      cwd: stack.workspace,
      gpu: false,
      step: { id: 'upper:b', pass: 1, chef: 'text' },
    });
    await until(
      () => results.some((r) => r.buildId === build),
      'the build result',
      30_000,
      () => stack.logs(),
    );
    expect(results.find((r) => r.buildId === build)).toMatchObject({
      status: 'cancelled',
      error: expect.stringMatching(/superseded by task other-b .*MajorDomo re-plans/),
    });
    // The other task is recorded once nothing of the one it superseded runs: after the kill the
    // chef answered on, so it is waited for.
    await until(
      async () => (await tasks.get('other-b'))?.value.state === 'finished',
      'the other task run',
      30_000,
      () => stack.logs(),
    );
  }, 120_000);
});

/**
 * The same dead chef's task, seen from its build's side: the request comes back to the restarted
 * chef (its ack wait), whose inputs changed meanwhile, and is answered cancelled. MajorDomo sends
 * the step's next build on that answer, possibly to another runner of the queue (pilot workers),
 * whose StepTurns knows nothing of the orphan: so the answer waits until the orphan is killed.
 */
describe("a build answered cancelled while a killed chef's task of it still runs", () => {
  let stack: Stack;
  let results: BuildResult[] = [];
  const ack = { CP_CHEF_ACK_WAIT_MS: '2000' };
  const readOld = () => stack.dir.join('read-old');

  beforeAll(async () => {
    stack = await Stack.start('orphan');
    // The old input's run goes on while `hold` is there: until the stack's folder goes at the end.
    // It says when it has read the old input (readOld): the test edits it only after that.
    const hold = stack.dir.join('hold');
    writeFileSync(hold, '');
    results = await stack.startUpperChef(
      `c=$(cat {in0}); case "$c" in old*) touch ${readOld()}; while [ -e ${hold} ]; do sleep 0.02; done;; esac; printf '%s\\n' "$c" | tr a-z A-Z > {out0}`,
      ack,
    );
  }, 120_000);
  afterAll(async () => {
    await stack?.[Symbol.asyncDispose]();
  });

  it('kills the orphan before the cancelled answer is stored', async () => {
    const tasks = await stack.bus.kv(buckets.tasks(stack.project), TaskRecord);
    const build = '0a5a0a5a'.repeat(2);
    stack.write('src/o.txt', 'old\n');
    await stack.requestUpper(build, 'o', sha256('old\n'));
    // Recorded running is not enough: its command may not have read the input yet (under load it
    // read the new one, finished, and was no orphan: fresh-clone CI run 157).
    await until(
      async () =>
        existsSync(readOld()) && (await tasks.get(`b-${build}`))?.value.state === 'running',
      'the task running, its old input read',
      30_000,
      () => stack.logs(),
    );
    await stack.kill9('chef');
    stack.write('src/o.txt', 'new\n');
    const chefFile = stack.dir.join('chef.yaml');
    await stack.start('chef', { CP_CHEF: 'text', CP_CHEF_DEFINITION: chefFile, ...ack });
    // The request comes back after the ack wait; its input changed: answered cancelled.
    await until(
      () => results.some((r) => r.buildId === build),
      'the build answered',
      30_000,
      () => stack.logs(),
    );
    const task = (await tasks.get(`b-${build}`))?.value;
    expect(results.find((r) => r.buildId === build)).toMatchObject({ status: 'cancelled' });
    expect(task?.state).toBe('killed');
    expect(task?.stopping).toBeUndefined();
  }, 120_000);
});
