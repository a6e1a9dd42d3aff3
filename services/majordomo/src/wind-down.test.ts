import {
  type BuildCancel,
  type BuildRequested,
  buckets,
  Envelope,
  subjects,
  TaskControl,
  TaskRecord,
} from '@computepods/protocol';
import { untilDefined } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { POD, sha, TestMajorDomo } from './test-majordomo.js';

const P = 'winddown';

/**
 * A step's next build waits for the end of its cancelled one. Replicas of one chef share its
 * queue: a build cancelled on one replica (its task still being killed) and the step's next build
 * taken up by another would run side by side, both writing the step's outputs. MajorDomo sends
 * the next build only once a chef reported the cancelled one's end (any result), or after
 * CP_CANCEL_WAIT_MS. A real nats-server, MajorDomo in this process, chef `gen` played by hand.
 */
describe('MajorDomo: one build of a step at a time across chef replicas', () => {
  const t = new TestMajorDomo(P);
  const cancels: BuildCancel[] = [];
  const requestsOf = (taskId: string) => t.requests.filter((r) => r.taskId === taskId);
  const nth = (taskId: string, n: number) =>
    untilDefined(`request ${n + 1} for ${taskId}`, () => requestsOf(taskId)[n], 30_000);
  const cancelOf = (buildId: string) =>
    untilDefined(`the cancel of ${buildId}`, () => cancels.find((c) => c.buildId === buildId));
  const cancelled = (req: BuildRequested) =>
    t.bus.publish('build.result', subjects.buildResult(P), {
      buildId: req.buildId,
      taskId: req.taskId,
      chef: 'gen',
      pod: POD,
      status: 'cancelled',
      error: 'cancelled: inputs changed; task killed',
      durationMs: 1,
    });

  beforeAll(async () => {
    await t.open();
    t.bus.listen(subjects.buildCancel(P), {
      accept: ['build.cancel'],
      project: P,
      handler: (m) => {
        cancels.push(m.body);
      },
    });
    await t.bus.nc.flush();
    // Ten minutes: here only a chef's report lets the next build go.
    await t.start({ CP_CANCEL_WAIT_MS: '600000' });
  }, 60_000);
  afterAll(() => t.close());

  it("sends the step's next build once the chef reported the end of the cancelled one", async () => {
    await t.files(t.changed('src/a.txt', 'a1'));
    const first = await nth('up:a', 0);
    await t.files(t.changed('src/a.txt', 'a2'));
    await cancelOf(first.buildId);
    // MajorDomo handles file events in order: once b's build is asked for, the change to a was
    // planned long before. a's next build was not sent: a chef may still be killing the first.
    await t.files(t.changed('src/b.txt', 'b1'));
    await nth('up:b', 0);
    expect(requestsOf('up:a')).toEqual([first]);
    // The chef that held it reports its end: the next build goes, with a's new bytes.
    await cancelled(first);
    const next = await nth('up:a', 1);
    expect(next.inputs).toEqual({ 'src/a.txt': sha('a2') });
    expect(next.buildId).not.toBe(first.buildId);
    await t.succeed(next, 'A2');
    await untilDefined('out/a.up up to date', () =>
      t.md.queries.artefact('out/a.up').artefact.status === 'up_to_date' ? true : undefined,
    );
  });

  it('sends it after CP_CANCEL_WAIT_MS when no chef reports that end: never stuck', async () => {
    await t.stop();
    await t.start({ CP_CANCEL_WAIT_MS: '2000' });
    await t.files(t.changed('src/c.txt', 'c1'));
    const first = await nth('up:c', 0);
    await t.files(t.changed('src/c.txt', 'c2'));
    await cancelOf(first.buildId);
    const next = await nth('up:c', 1);
    expect(next.inputs).toEqual({ 'src/c.txt': sha('c2') });
    // Its task, which no runner recorded (still queued, or never sent), is recorded ended first:
    // a runner that takes it up later leaves it.
    const tasks = await t.bus.kv(buckets.tasks(P), TaskRecord);
    expect((await tasks.get(`b-${first.buildId}`))?.value).toMatchObject({
      state: 'killed',
      reason: expect.stringMatching(/^cancelled before any runner took it/),
      task: { buildId: first.buildId, step: { id: 'up:c', chef: 'gen' } },
    });
    // A late end of the cancelled build changes nothing: the next one is in flight.
    await cancelled(first);
    await t.succeed(next, 'C2');
    await untilDefined('out/c.up up to date', () =>
      t.md.queries.artefact('out/c.up').artefact.status === 'up_to_date' ? true : undefined,
    );
    expect(requestsOf('up:c')).toHaveLength(2);
  });

  it("kills the cancelled build's task a runner still runs once the wait is over, then sends the next build once its processes are gone", async () => {
    // Runners sharing a queue (pilot workers, replicas) do not stop each other's older task of a
    // step: the next build's task, taken by another runner, would run beside it.
    await t.stop();
    await t.start({ CP_CANCEL_WAIT_MS: '1000' });
    const tasks = await t.bus.kv(
      buckets.tasks(P),
      z.object({ state: z.string(), stopping: z.literal(true).optional() }),
    );
    const kills: Array<{ taskId: string; requestsSent: number }> = [];
    const gone: number[] = [];
    // A runner holding the task: it answers a kill and records the task killed, its command
    // still stopping (a SIGTERM trap); 400 ms later its processes are gone.
    const runner = t.bus.nc.subscribe(subjects.taskControl(P), {
      callback: (_e, m) => {
        const { taskId, action } = TaskControl.parse(Envelope.parse(m.json()).body);
        kills.push({ taskId, requestsSent: requestsOf('up:d').length });
        void tasks.put(taskId, { state: 'killed', stopping: true }).then(() => {
          m.respond(JSON.stringify({ ok: true, result: { taskId, state: 'killed', action } }));
          setTimeout(() => {
            gone.push(requestsOf('up:d').length);
            void tasks.put(taskId, { state: 'killed' });
          }, 400);
        });
      },
    });
    try {
      await t.bus.nc.flush();
      await t.files(t.changed('src/d.txt', 'd1'));
      const first = await nth('up:d', 0);
      // Its chef submitted its task, then died: the task runs on, recorded running.
      await tasks.put(`b-${first.buildId}`, { state: 'running' });
      await t.files(t.changed('src/d.txt', 'd2'));
      await cancelOf(first.buildId);
      const next = await nth('up:d', 1);
      expect(next.inputs).toEqual({ 'src/d.txt': sha('d2') });
      // Killed once, and its processes gone, before the next build was sent.
      expect(kills).toEqual([{ taskId: `b-${first.buildId}`, requestsSent: 1 }]);
      expect(gone).toEqual([1]);
      expect((await tasks.get(`b-${first.buildId}`))?.value.state).toBe('killed');
      // The attempt under way is the last: none after it is recorded.
      expect(await tasks.get(`b-${first.buildId}-1`)).toBeUndefined();
      await t.succeed(next, 'D2');
    } finally {
      runner.unsubscribe();
    }
  });
});
