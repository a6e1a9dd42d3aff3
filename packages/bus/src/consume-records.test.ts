import { BuildResult, buckets, DeadLetter, Envelope, subjects } from '@computepods/protocol';
import { NatsServer, until } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { Bus } from './bus.js';
import { quietLogger } from './logger.js';

const P = 'records';

const result = (buildId: string): BuildResult =>
  BuildResult.parse({
    buildId,
    taskId: `upper:${buildId}`,
    chef: 'text',
    pod: 'pod-1',
    status: 'succeeded',
    durationMs: 1,
  });

/**
 * A consumer of a KV bucket's own stream (ConsumeOptions.records): MajorDomo hears the results
 * chefs store this way (services/majordomo/src/result-records.ts).
 */
describe('consuming a KV bucket stream as records (a real nats-server)', () => {
  let nats: NatsServer;
  let bus: Bus;
  const logger = quietLogger('records-test');

  beforeAll(async () => {
    nats = await NatsServer.start();
    bus = await Bus.connect({ servers: nats.url, service: 'tester', project: P, logger });
  });
  afterAll(async () => {
    await bus?.close();
    await nats?.[Symbol.asyncDispose]();
  });

  it('hands over each value written after it was made, as a message of its type; deletes and invalid values are not handled', async () => {
    const bucket = buckets.builds(P);
    const kv = await bus.kv(bucket, z.unknown());
    await kv.put('before', result('before'));
    const got: Array<{ body: BuildResult; cid: string; id: string }> = [];
    const letters: DeadLetter[] = [];
    bus.nc.subscribe(subjects.deadLetter(P, 'tester'), {
      callback: (_e, m) => {
        letters.push(DeadLetter.parse(Envelope.parse(m.json()).body));
      },
    });
    const consumer = await bus.consume({
      stream: `KV_${bucket}`,
      durable: 'records-test',
      filterSubject: subjects.buildRecords(P),
      records: true,
      deliverNew: true,
      accept: ['build.result'],
      handler: async (msg) => {
        got.push({ body: msg.body, cid: msg.cid, id: msg.id });
      },
    });
    await kv.put('aaaa0001', result('aaaa0001'));
    await kv.delete('aaaa0001');
    await kv.put('bad', { buildId: 'bad' });
    await kv.put('aaaa0002', result('aaaa0002'));
    await until(
      () => got.length >= 2 && letters.length >= 1,
      'two results and a dead letter',
      10_000,
    );
    // Written before the consumer was made: not handed over (deliverNew).
    expect(got.map((g) => g.body.buildId)).toEqual(['aaaa0001', 'aaaa0002']);
    expect(got[0]?.body).toEqual(result('aaaa0001'));
    expect(got[0]?.cid).toBe('aaaa0001');
    expect(got[0]?.id).toMatch(new RegExp(`^KV_${bucket}:\\d+$`));
    // The invalid value is dead-lettered (its fields named); the delete is acknowledged unread.
    expect(letters).toHaveLength(1);
    expect(letters[0]?.issues.map((i) => i.path)).toContain('body.taskId');
    await consumer.stop();
    const info = await bus.jsm.consumers.info(`KV_${bucket}`, 'records-test');
    expect(info.num_ack_pending).toBe(0);
    expect(info.num_pending).toBe(0);
  });
});
