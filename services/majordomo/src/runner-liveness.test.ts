import { Bus, ensureProjectStreams, quietLogger, type TypedKv } from '@computepods/bus';
import { buckets, TaskRecord } from '@computepods/protocol';
import { NatsServer, until } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { watchRunnerLiveness } from './runner-liveness.js';

const P = 'liveness-named';

/**
 * A task queued again names the runner processes whose jobs folder marks may tell of its start
 * (RequeuedHandle.instances, executors' LocalBackend.earlierStart). A MajorDomo started after
 * its runner died heard none of them: the process its record names (TaskRecord.runnerInstance,
 * written by the runner that took it) is named then. Without it, the mark of any process of that
 * runner id would do, one that ran on this machine before the id was used on another. Real
 * nats-server; a live runner of the queue is a bus answering $SRV pings as one.
 */
describe('runner liveness: a task queued again names the process that took it', () => {
  let nats: NatsServer;
  let bus: Bus;
  let live: Bus;
  let tasks: TypedKv<typeof TaskRecord>;

  beforeAll(async () => {
    nats = await NatsServer.start();
    const logger = quietLogger('runner-liveness-test');
    const connect = (service: string, metadata?: Record<string, string>) =>
      Bus.connect({
        servers: nats.url,
        service,
        project: P,
        logger,
        ...(metadata ? { metadata } : { discoverable: false }),
      });
    bus = await connect('majordomo');
    await ensureProjectStreams(bus, P);
    tasks = await bus.kv(buckets.tasks(P), TaskRecord, { history: 5 });
    // Another runner of queue q, alive: a task of the dead one may be queued again for it.
    live = await connect('runner', { runner: 'live', queue: 'q' });
  }, 60_000);
  afterAll(async () => {
    await live?.close();
    await bus?.close();
    await nats?.[Symbol.asyncDispose]();
  });

  it('after a restart (no process of the dead runner heard), names the one its record names', async () => {
    const time = new Date().toISOString();
    await tasks.put('t-named', {
      task: {
        taskId: 't-named',
        resource: 'q',
        command: 'true',
        cwd: '/tmp',
        env: {},
        gpu: false,
      },
      state: 'submitted',
      runner: 'gone',
      runnerInstance: 'proc-gone',
      queue: 'q',
      history: [
        { state: 'created', time },
        { state: 'submitted', time },
      ],
      updated: time,
    });
    // This MajorDomo never heard runner `gone`: it gives it a grace, then sweeps.
    const stop = watchRunnerLiveness(bus, tasks, 300);
    try {
      let rec: TaskRecord | undefined;
      await until(
        async () => {
          rec = (await tasks.get('t-named'))?.value;
          return rec?.state === 'created';
        },
        't-named to be queued again',
        30_000,
      );
      expect(rec).toMatchObject({
        state: 'created',
        task: { attempt: 2 },
        handle: { kind: 'requeued', runner: 'gone', instances: ['proc-gone'] },
      });
      expect(rec?.runner).toBeUndefined();
      expect(rec?.runnerInstance).toBeUndefined();
    } finally {
      stop();
    }
  }, 60_000);
});
