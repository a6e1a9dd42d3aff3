import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type BuildResult, buckets, TaskRecord } from '@computepods/protocol';
import { sha256 } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Stack } from './stack.js';

/**
 * Builds of one step asked for in quick succession, each but the last cancelled right after its
 * request (what MajorDomo does when the step's inputs change while it is asked for). The cancel
 * can reach the chef before the request it cancels is pulled, and the chef ignored it: the stale
 * build ran beside the step's next one, both writing the output, and the next one's report named
 * the other's half-written (empty) file (fresh-clone CI, output-reports). Now a chef runs one
 * build of a step at a time, the newest superseding any still held. The task records tell when
 * each run began and ended (a lock the command took was left behind by a run killed as
 * superseded, and told of an overlap there was not). Real nats-server, chef and runner processes.
 */
describe('builds of one step cancelled right after their requests', () => {
  let stack: Stack;
  let results: BuildResult[] = [];
  const ledger = () => stack.ledger();
  const runs = () => ledger().read();

  beforeAll(async () => {
    stack = await Stack.start('cancelearly');
    results = await stack.startUpperChef(
      `sleep 0.2; tr a-z A-Z < {in0} > {out0} && echo {stem} >> ${ledger().path}`,
    );
  }, 120_000);
  afterAll(async () => {
    await stack?.[Symbol.asyncDispose]();
  });

  it('never run two at once: every success reports the bytes its run left, the last one runs', async () => {
    stack.write('src/a.txt', 'a\n');
    const cancel = (buildId: string) => stack.cancelBuild(buildId, 'inputs changed');
    const ids = ['c0ffee01', 'c0ffee02', 'c0ffee03', 'c0ffee04'].map((i) => i.repeat(2));
    for (const buildId of ids.slice(0, -1)) {
      await stack.requestUpper(buildId, 'a', sha256('a\n'));
      await cancel(buildId);
    }
    await stack.requestUpper(ids[3] as string, 'a', sha256('a\n'));
    await stack.untilResults(results, 4);
    const byId = new Map(results.map((r) => [r.buildId, r]));
    expect(byId.get(ids[3] as string)).toMatchObject({ status: 'succeeded' });
    for (const r of results) {
      expect(['succeeded', 'cancelled'], r.error).toContain(r.status);
      if (r.status === 'succeeded')
        expect(r.outputs['out/a.upper']).toMatchObject({ sha256: sha256('A\n'), size: 2 });
    }
    // The runs of the step's tasks, from running to their end (killed or finished), one by one.
    const tasks = await stack.bus.kv(buckets.tasks(stack.project), TaskRecord);
    const spans = [...(await tasks.entries()).values()]
      .map(({ value }) => value)
      .filter((t) => t.state !== 'submitted' && t.history.some((h) => h.state === 'running'))
      .map((t) => ({
        id: t.task.taskId,
        from: t.history.find((h) => h.state === 'running')?.time ?? '',
        to: t.history.at(-1)?.time ?? '',
        state: t.state,
      }))
      .sort((a, b) => (a.from < b.from ? -1 : 1));
    expect(spans.length).toBeGreaterThan(0);
    for (const [i, s] of spans.entries()) {
      expect(['finished', 'killed']).toContain(s.state);
      if (i > 0) expect(s.from >= (spans[i - 1]?.to ?? ''), JSON.stringify(spans)).toBe(true);
    }
    expect(runs()).toMatch(/^(a\n)+$/);
    expect(readFileSync(join(stack.workspace, 'out/a.upper'), 'utf8')).toBe('A\n');
  });
});
