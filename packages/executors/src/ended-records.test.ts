import type { TaskSubmitted } from '@computepods/protocol';
import { defined, TempDir } from '@computepods/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { Executor } from './executor.js';
import { LocalBackend } from './local-backend.js';
import { RecordingHooks, testLocalResource } from './test-hooks.js';

const tmp = new TempDir('cp-exec-ended-');
afterAll(() => tmp[Symbol.dispose]());

const resource = testLocalResource(tmp.path, 2);

// A runner keeps the records of the tasks it ran in memory after they end (get(), control
// answers). Kept by count alone (10,000), a runner at a few tasks a second held them for most of
// an hour: the soak bench's runner grew ~0.5 MB a minute for 40 minutes. They are kept for
// keepEndedMs now, and never more than keepEnded of them.
describe('ended tasks kept in memory (real processes, a clock the test sets)', () => {
  let clock = 1_000_000;
  const ex = new Executor({
    resource: 'local-resource',
    backend: (ctx) => new LocalBackend({ resource }, ctx),
    hooks: new RecordingHooks(),
    runner: 'test',
    keepEnded: 4,
    keepEndedMs: 60_000,
    now: () => clock,
  });
  afterAll(() => ex.close());

  let n = 0;
  /** Task ids in the order their ends were seen (two run at once: not always the submit order). */
  const endOrder: string[] = [];
  const run = async (count: number): Promise<string[]> => {
    const tasks: TaskSubmitted[] = Array.from({ length: count }, () => ({
      taskId: `e${++n}-${process.pid}`,
      resource: 'local-resource',
      command: 'true',
      cwd: tmp.path,
      env: {},
      gpu: false,
    }));
    // Waited on as soon as submitted: an ended task may be forgotten before a later wait().
    const ends: Promise<{ state: string }>[] = [];
    for (const t of tasks) {
      await ex.submit(t);
      ends.push(
        ex.wait(t.taskId).then((r) => {
          endOrder.push(t.taskId);
          return r;
        }),
      );
    }
    for (const end of ends) expect((await end).state).toBe('finished');
    return tasks.map((t) => t.taskId);
  };
  const kept = () => ex.list().map((r) => r.task.taskId);

  it('forgets an ended task once it is older than keepEndedMs', async () => {
    const first = await run(3);
    expect(kept()).toEqual(first);
    clock += 59_999;
    const second = await run(1);
    expect(kept()).toEqual([...first, ...second]);
    // A minute after the first three ended, the next end lets them go.
    clock += 1;
    const third = await run(1);
    expect(kept()).toEqual([...second, ...third]);
    expect(ex.get(defined(first[0], 'first[0]'))).toBeUndefined();
  });

  it('keeps at most keepEnded of them, the ones that ended last', async () => {
    clock += 120_000;
    const ids = await run(7);
    // "Latest" is by end, and two tasks run at once: under load the 8th may end after the 9th.
    const lastEnded = endOrder.filter((id) => ids.includes(id)).slice(-4);
    expect(kept().sort()).toEqual(lastEnded.sort());
  });
});
