import { mkdirSync } from 'node:fs';
import { Bus, quietLogger } from '@computepods/bus';
import { RecordFailedError } from '@computepods/executors';
import { buckets, kvKey, subjects, TaskRecord } from '@computepods/protocol';
import { NatsServer, TempDir, until } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningRunner, startRunner } from './runner.js';

const P = 'recretry';
const TRIES = 8;

// A record write that keeps failing was tried 4 × 16 times: the runner's record hook retried 16
// times inside each of the executor's own 4 tries. The executor's retry is now the only one (the
// runner gives it its policy). The writes are counted on the server side of the wire: a core
// subscription on the record's KV subject sees every write the runner sends, accepted or not.
// They fail because the bucket's stream is full (max_msgs reached, discard new: JetStream
// answers 503, retryable). A deleted stream would do too, but bus's TypedKv tries a write nobody
// answers again for 30 s on its own, which is not the retry counted here.
describe('task record writes are retried in one place (real nats-server)', () => {
  let nats: NatsServer;
  let bus: Bus;
  let runner: RunningRunner;
  const dir = new TempDir('cp-runner-retry-');
  const logger = quietLogger('record-retry-test');
  const ws = dir.join('ws');
  const stream = `KV_${buckets.tasks(P)}`;
  const taskId = 'sleeper';
  let writes = 0;

  beforeAll(async () => {
    mkdirSync(ws);
    nats = await NatsServer.start();
    bus = await Bus.connect({ servers: nats.url, service: 'runner', project: P, logger });
    runner = await startRunner(
      bus,
      {
        project: P,
        resource: 'local',
        queue: 'local',
        runnerId: 'r1',
        stateDir: dir.join('state'),
        parallel: 1,
        intake: 4,
        workspaceRoots: [ws],
      },
      { recordRetry: { attempts: TRIES, baseMs: 250, maxMs: 1_000 } },
    );
    bus.nc.subscribe(`$KV.${buckets.tasks(P)}.${kvKey(taskId)}`, {
      callback: () => {
        writes++;
      },
    });
    await bus.nc.flush();
  });
  afterAll(async () => {
    await runner?.stop();
    await bus?.close();
    await nats?.[Symbol.asyncDispose]();
    dir[Symbol.dispose]();
  });

  /** The record's stream takes no more messages (true) or as many as it did (false). */
  async function full(on: boolean): Promise<void> {
    const info = await bus.jsm.streams.info(stream);
    expect(info.config.discard).toBe('new'); // a KV bucket's: a full stream refuses a write
    await bus.jsm.streams.update(stream, {
      ...info.config,
      max_msgs: on ? info.state.messages : -1,
    });
  }

  const stored = async () => (await bus.kv(buckets.tasks(P), TaskRecord)).get(taskId);

  it('tries a write that keeps failing exactly recordRetry.attempts times, then gives up', async () => {
    await bus.publish('task.submitted', subjects.tasks(P, 'local'), {
      taskId,
      resource: 'local',
      command: 'sleep 120',
      cwd: ws,
    });
    await until(async () => (await stored())?.value.state === 'running', 'the task running');
    // Fewer versions than the bucket keeps: the full stream, not the key's history, decides.
    expect((await stored())?.revision).toBeLessThan(5);
    await full(true);
    await bus.nc.flush();
    writes = 0;
    const err = await runner.executor.kill(taskId).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RecordFailedError);
    await bus.nc.flush();
    expect(writes).toBe(TRIES);
    // Not recorded, so not acted on: the task still runs, in memory and in KV.
    expect(runner.executor.get(taskId)?.state).toBe('running');
    expect((await stored())?.value.state).toBe('running');
  });

  it('recovers from a failure that passes: the kill is recorded and carried out', async () => {
    writes = 0;
    const killing = runner.executor.kill(taskId);
    // A second write: the first was refused. Seeing the first on the wire is not enough: the
    // server hands it to the stream on its own queue, so the update below could overtake it and
    // the first write be stored (fresh-clone CI run 120; 2 runs in 10 at a load of 5-10).
    await until(() => writes >= 2, 'a second write (the first refused)');
    await full(false);
    const rec = await killing;
    expect(rec.state).toBe('killed');
    expect(writes).toBeGreaterThanOrEqual(2);
    expect(writes).toBeLessThanOrEqual(TRIES);
    expect((await stored())?.value.state).toBe('killed');
  });
});
