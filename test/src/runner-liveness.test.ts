import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Envelope, streams, subjects } from '@computepods/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GatedCopy } from './gated-copy.js';
import { LivenessStack } from './liveness-stack.js';
import type { Stack } from './stack.js';
import type { BuildLog } from './watch-builds.js';

/**
 * Runner liveness (issue #13): a runner that stops answering for good (killed -9 and never
 * started again, or frozen) has its unfinished tasks resolved by MajorDomo: a task that never
 * started is queued again once, for another runner of the queue; one that may have run is failed
 * with a reason naming the runner. A runner that comes back late has its result refused. The
 * runners' ack wait is ten minutes here: nothing the tests wait for can come from JetStream
 * handing a message out again. Real nats-server (operator mode), each service its own process;
 * a ledger outside the workspace counts the commands that ran to their end.
 */
describe('runner liveness: a runner that stops answering', () => {
  let t: LivenessStack;
  let stack: Stack;
  let log: BuildLog;
  let copy: GatedCopy;
  const ws = (p: string) => join(stack.workspace, p);
  const gate = (stem: string) => copy.gate(stem);
  const runs = (stem: string) => copy.runs(stem);
  const tasks = () => t.tasks();
  const until = (what: string, ok: () => boolean | Promise<boolean>) => t.until(what, ok);
  const taskOf = (stem: string) => t.taskOf(stem);
  const taskIdOf = (stem: string) => `b-${log.requestsFor(`copy:${stem}`)[0]?.buildId}`;
  /** A log line holding both texts. */
  const logLine = (msg: string, taskId: string) => {
    const q = (t: string) => t.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    return new RegExp(`^(?=.*${q(msg)})(?=.*${q(taskId)}).*$`, 'm');
  };
  const resultOf = (stem: string) => {
    const req = log.requestsFor(`copy:${stem}`)[0];
    return req ? log.resultOf(req.buildId) : undefined;
  };
  const runner = (name: string) => t.runner(name);
  /**
   * A failed task's orphaned process, let go (gate), runs to its end. Nobody records that end (its
   * record stays failed), but the output it writes is a change MajorDomo did not plan: the step is
   * built again, a new attempt, and ends up to date. So the command runs twice, the second run
   * right after the first (~20 ms): waiting for "one run" could miss it.
   */
  const rebuiltAfterOrphan = async (stem: string) => {
    await stack.until(`g/${stem}.out`, (r) => r.status === 'up_to_date', 60_000);
    await until(`both runs of ${stem}`, () => runs(stem).length >= 2);
    expect(runs(stem)).toEqual([`pause ${stem}`, `pause ${stem}`]);
  };
  const stopped = (runner: string) =>
    new RegExp(`^runner ${runner} stopped answering at \\S+; task not completed$`);

  beforeAll(async () => {
    t = await LivenessStack.start('liveness');
    ({ stack, log, copy } = t);
  }, 180_000);
  afterAll(async () => {
    await t?.[Symbol.asyncDispose]();
  });

  it('killed -9 for good: its running task fails naming it, its waiting task runs once on the other runner', async () => {
    stack.write('g/a.in', 'pause a\n');
    await until('a to run on runner-1', async () => (await taskOf('a'))?.state === 'running');
    // runner-1 runs one task at a time: b waits there, recorded but not started.
    stack.write('g/b.in', 'b\n');
    await until('b to wait on runner-1', async () => {
      const b = await taskOf('b');
      return b?.state === 'submitted' && b.runner === 'runner-1';
    });
    await runner('runner-2');
    await stack.kill9('runner-1');

    // b had not started: queued again, once, and run by runner-2.
    await until('b to finish', async () => (await taskOf('b'))?.state === 'finished');
    const b = await taskOf('b');
    expect(b).toMatchObject({ runner: 'runner-2', task: { attempt: 2 } });
    await stack.until('g/b.out', (r) => r.status === 'up_to_date', 60_000);
    expect(readFileSync(ws('g/b.out'), 'utf8')).toBe('b\n');
    expect(runs('b')).toEqual(['b']);
    // a may have run (its process outlives the runner here): failed, naming the runner.
    await until('a to be resolved', async () => (await taskOf('a'))?.state === 'failed');
    const a = await taskOf('a');
    expect(a?.runner).toBe('runner-1');
    expect(a?.reason).toMatch(stopped('runner-1'));
    await until('the result of a', () => resultOf('a') !== undefined);
    expect(resultOf('a')?.status).toBe('failed');
    expect(resultOf('a')?.error).toContain('runner runner-1 stopped answering at');
    await until('the result of b', () => resultOf('b') !== undefined);
    expect(resultOf('b')?.status).toBe('succeeded');

    // a's orphaned process ends: nobody records it, the record stays failed.
    gate('a');
    await rebuiltAfterOrphan('a');
    expect(await taskOf('a')).toMatchObject({ state: 'failed', runner: 'runner-1' });
    expect(log.requestsFor('copy:b')).toHaveLength(1);
    expect(runs('b')).toEqual(['b']);
  }, 180_000);

  it('frozen, then back: its tasks are resolved meanwhile and its late result is refused', async () => {
    stack.write('g/c.in', 'pause c\n');
    await until('c to run on runner-2', async () => (await taskOf('c'))?.state === 'running');
    stack.write('g/d.in', 'd\n');
    await until('d to wait on runner-2', async () => {
      const d = await taskOf('d');
      return d?.state === 'submitted' && d.runner === 'runner-2';
    });
    await runner('runner-3');
    const frozen = stack.procs.get('runner-2')!;
    frozen.signal('SIGSTOP');
    try {
      await until('d to finish', async () => (await taskOf('d'))?.state === 'finished');
      expect(await taskOf('d')).toMatchObject({ runner: 'runner-3', task: { attempt: 2 } });
      await until('c to be resolved', async () => (await taskOf('c'))?.state === 'failed');
      expect((await taskOf('c'))?.reason).toMatch(stopped('runner-2'));
    } finally {
      frozen.signal('SIGCONT');
    }
    // Back, runner-2 sees c end and records it with the revision it last wrote: refused.
    gate('c');
    await rebuiltAfterOrphan('c');
    await frozen.waitForOutput(
      logLine('could not record the end of a task', taskIdOf('c')),
      60_000,
    );
    const c = await taskOf('c');
    expect(c).toMatchObject({ state: 'failed', runner: 'runner-2' });
    expect(c?.reason).toMatch(stopped('runner-2'));
    await until('the result of c', () => resultOf('c') !== undefined);
    expect(resultOf('c')?.status).toBe('failed');
    // d ran once, on runner-3: runner-2's own queued copy of it could not be recorded running
    // (the record moved on), and is dropped, not tried again.
    await frozen.waitForOutput(
      logLine('task record changed elsewhere; not running this copy', taskIdOf('d')),
      60_000,
    );
    expect(runs('d')).toEqual(['d']);
    await until('the result of d', () => resultOf('d') !== undefined);
    expect(resultOf('d')?.status).toBe('succeeded');
  }, 180_000);

  it('with no other runner of the queue left: even a task that never started fails, naming the runner', async () => {
    await stack.kill9('runner-2');
    await stack.kill9('runner-3');
    await runner('runner-4');
    stack.write('g/e.in', 'pause e\n');
    await until('e to run on runner-4', async () => {
      const e = await taskOf('e');
      return e?.state === 'running' && e.runner === 'runner-4';
    });
    stack.write('g/f.in', 'f\n');
    await until('f to wait on runner-4', async () => {
      const f = await taskOf('f');
      return f?.state === 'submitted' && f.runner === 'runner-4';
    });
    await stack.kill9('runner-4');
    try {
      await until('e and f to be resolved', async () => {
        const [e, f] = [await taskOf('e'), await taskOf('f')];
        return e?.state === 'failed' && f?.state === 'failed';
      });
      for (const stem of ['e', 'f']) {
        const rec = await taskOf(stem);
        expect(rec).toMatchObject({ runner: 'runner-4' });
        expect(rec?.reason).toMatch(stopped('runner-4'));
        expect(rec?.task.attempt).toBeUndefined(); // not queued again: nobody could take it
        await until(`the result of ${stem}`, () => resultOf(stem) !== undefined);
        expect(resultOf(stem)?.status).toBe('failed');
      }
      expect(runs('f')).toEqual([]);
    } finally {
      gate('e');
    }
  }, 180_000);

  it('a task message it pulled and never recorded is handed out again once it is taken for dead', async () => {
    const durable = () =>
      stack.bus.jsm.consumers.info(streams.tasks(stack.project), 'runner-local');
    const majordomo = stack.procs.get('majordomo')!;
    const from = majordomo.output.length;
    const a = await runner('runner-5');
    await majordomo.waitForOutput(
      logLine('replica answering', '"runner":"runner-5"'),
      60_000,
      from,
    );
    // e's process, let go at the end of the last case, wrote its output: copy:e is built again,
    // here, before this runner is frozen holding no task.
    await rebuiltAfterOrphan('e');
    await until('its pull request, no task held', async () => {
      const d = await durable();
      return d.num_waiting > 0 && d.num_ack_pending === 0 && d.num_pending === 0;
    });
    a.signal('SIGSTOP');
    // The task's message must be pulled and left unacknowledged while the runner is frozen. A
    // pull request of ours waits beside the frozen runner's, whose own expires within 5 s
    // (PULL.expires): the message goes to whichever is open (the older first), or waits for
    // the next of ours. Publishing to the frozen runner's request alone raced its expiry: a message sent
    // after it was never delivered (test/src/runner-reclaim.test.ts, fresh-clone CI run 143).
    const consumer = await stack.bus.js.consumers.get(streams.tasks(stack.project), 'runner-local');
    const ours = consumer.next({ expires: 1_000 });
    const marker = stack.dir.join('pulled-runs');
    await stack.bus.publish('task.submitted', subjects.tasks(stack.project, 'local'), {
      taskId: 'pulled-1',
      resource: 'local',
      command: `echo run >> ${marker}`,
      cwd: stack.workspace,
      env: {},
      gpu: false,
    });
    // Null when the frozen runner's request took it; never acknowledged either way. Ours lasts
    // a second, well inside the 7 s MajorDomo waits before it takes the runner for dead.
    let got = await ours;
    while (!got && (await durable()).num_pending > 0) got = await consumer.next({ expires: 1_000 });
    if (got) expect(got.info.deliveryCount).toBe(1);
    expect(await durable()).toMatchObject({ num_ack_pending: 1, num_pending: 0 });
    await a.kill9();
    expect(await (await tasks()).get('pulled-1')).toBeUndefined();
    // The ack wait is ten minutes: only MajorDomo's release can hand the message out again now.
    // The test takes it (its second delivery) and gives it back, for the runner started next.
    await majordomo.waitForOutput(
      logLine('runner stopped answering', '"runner":"runner-5"'),
      60_000,
      from,
    );
    const m = await consumer.next({ expires: 30_000 });
    expect(m?.info.deliveryCount).toBe(2);
    expect(Envelope.parse(m?.json()).body).toMatchObject({ taskId: 'pulled-1' });
    m?.nak();

    await runner('runner-6');
    await until(
      'the task to finish',
      async () => (await (await tasks()).get('pulled-1'))?.value.state === 'finished',
    );
    expect((await (await tasks()).get('pulled-1'))?.value.runner).toBe('runner-6');
    expect(readFileSync(marker, 'utf8')).toBe('run\n');
  }, 180_000);
});
