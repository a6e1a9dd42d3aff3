import { sha256Hex, streams, subjects } from '@computepods/protocol';
import { NatsServer } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { Bus } from './bus.js';
import { createLogger } from './logger.js';
import { ensureProjectStreams } from './project.js';

const P = 'beat';
const sha = sha256Hex('abc');
const fileBody = (path: string) => ({
  pod: 'pod-a',
  events: [{ kind: 'changed' as const, path, size: 3, mtimeNs: '1', sha256: sha }],
});

describe("consume's shared heartbeat and lazy logger (a real nats-server)", () => {
  let nats: NatsServer;
  let bus: Bus;
  const logger = createLogger('beat-test');
  logger.level = 'silent';

  beforeAll(async () => {
    nats = await NatsServer.start();
    bus = await Bus.connect({ servers: nats.url, service: 'tester', project: P, logger });
    await ensureProjectStreams(bus, P);
  });
  afterAll(async () => {
    await bus?.close();
    await nats?.[Symbol.asyncDispose]();
  });

  it('handlers running past the ack wait, several at once, are each delivered once', async () => {
    const ackWaitMs = 2_000;
    const runs: string[] = [];
    const child = vi.spyOn(bus.logger, 'child');
    let logged = 0;
    const consumer = await bus.consume({
      stream: streams.files(P),
      durable: 'beat-test',
      accept: ['files.changed'],
      concurrency: 3,
      ackWaitMs,
      handler: async (msg, ctx) => {
        const path = msg.body.events[0]?.path ?? '';
        runs.push(path);
        if (path === 'logs.txt') {
          ctx.logger.debug('asked for its logger');
          logged++;
        }
        // Work for 2.5 ack waits: without heartbeats the server delivers it again meanwhile.
        await new Promise((r) => setTimeout(r, ackWaitMs * 2.5));
      },
    });
    for (const path of ['a.txt', 'b.txt', 'logs.txt'])
      await bus.publish('files.changed', subjects.filesChanged(P, 'p1'), fileBody(path));
    const end = performance.now() + 30_000;
    for (;;) {
      const i = await bus.jsm.consumers.info(streams.files(P), 'beat-test');
      if (i.num_pending === 0 && i.num_ack_pending === 0 && i.ack_floor.consumer_seq === 3) {
        expect(i.num_redelivered).toBe(0);
        expect(i.delivered.consumer_seq).toBe(3);
        break;
      }
      if (performance.now() > end) throw new Error('the messages were not all acknowledged');
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(runs.sort()).toEqual(['a.txt', 'b.txt', 'logs.txt']);
    // A child logger only for the handler that asked for one.
    expect(logged).toBe(1);
    expect(child).toHaveBeenCalledTimes(1);
    child.mockRestore();
    await consumer.stop();
  });
});
