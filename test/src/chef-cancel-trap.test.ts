import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type BuildResult, buckets, TaskRecord } from '@computepods/protocol';
import { sha256, until } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Stack } from './stack.js';

/**
 * A cancelled build whose command outlives its SIGTERM (a trap that takes a second to clean up,
 * well within the runner's 5 s grace before SIGKILL). The task is recorded killed before it is
 * signalled, and the chef used to take that record as the build's end: the step's next build
 * began while the trap still ran, both writing the outputs. Now the record says `stopping` until
 * the runner has seen the task's processes gone, and the chef waits for that. A ledger the
 * command writes tells when each run began and ended. Real nats-server, chef and runner.
 */
describe('a cancelled build whose command traps SIGTERM', () => {
  let stack: Stack;
  let results: BuildResult[] = [];
  const ledger = () => stack.ledger().path;
  const lines = () => stack.ledger().read();

  beforeAll(async () => {
    stack = await Stack.start('canceltrap');
    results = await stack.startUpperChef(
      [
        `trap 'sleep 1; echo end $$ >> ${ledger()}; exit 3' TERM`,
        `echo begin $$ >> ${ledger()}`,
        'i=0; while [ $i -lt 20 ]; do sleep 0.05; i=$((i+1)); done',
        `tr a-z A-Z < {in0} > {out0} && echo end $$ >> ${ledger()}`,
      ].join('; '),
    );
  }, 120_000);
  afterAll(async () => {
    await stack?.[Symbol.asyncDispose]();
  });

  it("the step's next build begins only once the cancelled one's command has ended", async () => {
    stack.write('src/a.txt', 'a\n');
    const [first, next] = ['7a9c0001', '7a9c0002'].map((i) => i.repeat(2)) as [string, string];
    await stack.requestUpper(first, 'a', sha256('a\n'));
    await until(() => lines().startsWith('begin'), 'the first build to begin', 30_000);
    await stack.cancelBuild(first, 'inputs changed');
    await stack.requestUpper(next, 'a', sha256('a\n'));
    await stack.untilResults(results, 2);
    const byId = new Map(results.map((r) => [r.buildId, r]));
    expect(byId.get(first)).toMatchObject({ status: 'cancelled' });
    expect(byId.get(next)).toMatchObject({ status: 'succeeded' });
    // One run after the other: the first's trap wrote its end before the next run began.
    const runs = lines().trim().split('\n');
    expect(
      runs.map((l) => l.split(' ')[0]),
      lines(),
    ).toEqual(['begin', 'end', 'begin', 'end']);
    const [b1, e1, b2, e2] = runs.map((l) => l.split(' ')[1]);
    expect(e1).toBe(b1);
    expect(e2).toBe(b2);
    expect(b2).not.toBe(b1);
    expect(readFileSync(join(stack.workspace, 'out/a.upper'), 'utf8')).toBe('A\n');
  });

  it('cpctrl task list says which ended tasks may still run', async () => {
    const tasks = await stack.bus.kv(buckets.tasks(stack.project), TaskRecord);
    const time = new Date().toISOString();
    await tasks.put('lingering', {
      task: { taskId: 'lingering', resource: 'local', command: 'true', cwd: stack.workspace },
      state: 'killed',
      stopping: true,
      updated: time,
    });
    const table = await stack.cpctrl(['task', 'list']);
    expect(table.stdout).toMatch(/^lingering\s+killed \(stopping\)\s/m);
    const json = await stack.cpctrl(['-o', 'json', 'task', 'list']);
    expect(JSON.parse(json.stdout)).toContainEqual(
      expect.objectContaining({ state: 'killed', stopping: true }),
    );
  });
});
