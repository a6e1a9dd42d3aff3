import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GatedCopy } from './gated-copy.js';
import { LivenessStack } from './liveness-stack.js';
import type { Stack } from './stack.js';
import type { BuildLog } from './watch-builds.js';

/**
 * A queued local task started as a slot frees, before its running record is written (the early
 * start: recorded `submitted` until the spawner reports its pid), whose runner is killed -9 then
 * and stays away past CP_RUNNER_DEAD_S: MajorDomo queues it again for the other runner of the
 * queue, while the first copy runs on (the spawner outlives its runner). That runner must follow
 * the copy, not start another. The window is held open by the first runner's spawner pid hold
 * (CP_SPAWNER_PID_HOLD_MS, ten minutes: a task's pid is reported with its exit). Real
 * nats-server and services; the gated copy chef counts each start of a command and each run to
 * its end.
 */
describe('runner early start: its runner killed -9 before the start was recorded', () => {
  let t: LivenessStack;
  let stack: Stack;
  let log: BuildLog;
  let copy: GatedCopy;
  const until = (what: string, ok: () => boolean | Promise<boolean>) => t.until(what, ok);
  const taskOf = (stem: string) => t.taskOf(stem);
  const runner = (name: string) => t.runner(name);

  beforeAll(async () => {
    t = await LivenessStack.start('early-start', { CP_SPAWNER_PID_HOLD_MS: '600000' });
    ({ stack, log, copy } = t);
  }, 180_000);
  afterAll(async () => {
    await t?.[Symbol.asyncDispose]();
  });

  it('the runner that takes it again follows the running copy and records its end: the command runs once', async () => {
    stack.write('g/a.in', 'pause a\n');
    await until('a to run on runner-1', async () => (await taskOf('a'))?.state === 'running');
    // One lane: x waits for it, recorded submitted.
    stack.write('g/x.in', 'pause x\n');
    await until('x to wait on runner-1', async () => {
      const x = await taskOf('x');
      return x?.state === 'submitted' && x.runner === 'runner-1';
    });
    await runner('runner-2');
    // a ends: x starts in its lane before its running record, which waits for x's pid.
    copy.gate('a');
    await until('x to start on runner-1', () => copy.starts('x') === 1);
    expect(await taskOf('x')).toMatchObject({ state: 'submitted', runner: 'runner-1' });
    await stack.kill9('runner-1');

    // Gone past CP_RUNNER_DEAD_S: x is queued again and runner-2 takes it.
    await until('x to be taken by runner-2', async () => {
      const x = await taskOf('x');
      return x?.state === 'running' && x.runner === 'runner-2';
    });
    copy.gate('x');
    await until('x to finish', async () => (await taskOf('x'))?.state === 'finished');
    // Its end recorded: the copy that ended began before it (its start line comes before the
    // gate). One start: the first copy, followed in its folder, never started again.
    expect(copy.starts('x')).toBe(1);
    const x = await taskOf('x');
    expect(x).toMatchObject({ runner: 'runner-2', task: { attempt: 2 } });
    expect(x?.reason).toContain('runner runner-1 started it before it stopped answering');
    expect(x?.handle).toMatchObject({ kind: 'local' });
    await stack.until('g/x.out', (r) => r.status === 'up_to_date', 60_000);
    expect(readFileSync(join(stack.workspace, 'g/x.out'), 'utf8')).toBe('pause x\n');
    expect(copy.runs('x')).toEqual(['pause x']);
    const req = log.requestsFor('copy:x')[0];
    await until('the result of x', () => !!req && log.resultOf(req.buildId) !== undefined);
    expect(log.resultOf(req!.buildId)?.status).toBe('succeeded');
  }, 180_000);
});
