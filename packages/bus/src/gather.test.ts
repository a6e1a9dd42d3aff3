import { NatsServer } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { Bus } from './bus.js';
import { gatherReplies } from './gather.js';
import { quietLogger } from './logger.js';

/** gatherReplies over a real nats-server: several responders, some of which are not ours. */
describe('gatherReplies (a real nats-server)', () => {
  let nats: NatsServer;
  let bus: Bus;
  const logger = quietLogger('gather-test');
  const Pong = z.object({ id: z.string() });

  beforeAll(async () => {
    nats = await NatsServer.start();
    bus = await Bus.connect({ servers: nats.url, service: 'tester', project: 'gather', logger });
  });
  afterAll(async () => {
    await bus?.close();
    await nats?.[Symbol.asyncDispose]();
  });

  it('keeps the answers of the schema and skips the rest, none of them fatal', async () => {
    const answers = ['{"id": "a"}', 'not json', '{"id": 7}', '{"id": "b", "more": 1}'];
    const subs = answers.map((answer) =>
      bus.nc.subscribe('gather.ping', {
        callback: (_e, m) => {
          m.respond(answer);
        },
      }),
    );
    try {
      await bus.nc.flush();
      const got = await gatherReplies(bus.nc, 'gather.ping', Pong, {
        strategy: 'count',
        maxMessages: answers.length,
        maxWait: 30_000,
      });
      expect(got.map((p) => p.id).sort()).toEqual(['a', 'b']);
    } finally {
      for (const s of subs) s.unsubscribe();
    }
  });

  it('is empty when nobody answers', async () => {
    expect(
      await gatherReplies(bus.nc, 'gather.nobody', Pong, { strategy: 'timer', maxWait: 200 }),
    ).toEqual([]);
  });
});
