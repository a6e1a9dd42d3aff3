import { NatsServer } from '@computepods/testkit';
import type { StoredMsg } from '@nats-io/jetstream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Bus } from './bus.js';
import { quietLogger } from './logger.js';
import { readStored } from './stored-messages.js';

describe('readStored: one subject of a stream, read by message gets (a real nats-server)', () => {
  let nats: NatsServer;
  let bus: Bus;

  beforeAll(async () => {
    nats = await NatsServer.start();
    bus = await Bus.connect({
      servers: nats.url,
      service: 'tester',
      project: 'stored',
      logger: quietLogger('stored-messages-test'),
    });
    await bus.jsm.streams.add({ name: 'mixed', subjects: ['m.>'] });
  });
  afterAll(async () => {
    await bus?.close();
    await nats?.[Symbol.asyncDispose]();
  });

  const text = (m: StoredMsg) => new TextDecoder().decode(m.data);
  const read = async (walkers: number, during?: () => Promise<void>) => {
    const seen: StoredMsg[] = [];
    const { read: n } = await readStored(
      bus.jsm,
      'mixed',
      'm.wanted',
      (m) => {
        seen.push(m);
        if (seen.length === 1) void during?.();
      },
      { walkers },
    );
    expect(n).toBe(seen.length);
    return seen;
  };

  it("hands over the subject's messages, skipping the others, up to the stream's end when it began", async () => {
    expect(await read(4)).toEqual([]);
    for (let i = 0; i < 30; i++) await bus.js.publish(i % 3 === 0 ? 'm.wanted' : 'm.other', `${i}`);
    const wanted = ['0', '3', '6', '9', '12', '15', '18', '21', '24', '27'];
    // One walker: oldest first. Stored while the walk runs: past its end, so not read.
    const one = await read(1, async () => {
      await bus.js.publish('m.wanted', 'late');
    });
    expect(one.map(text)).toEqual(wanted);
    // Many walkers (more than messages, too): each message once, whatever the order.
    for (const walkers of [3, 16, 100]) {
      const many = await read(walkers);
      expect(many.map((m) => m.seq).sort((a, b) => a - b)).toEqual(
        [...one.map((m) => m.seq), many.find((m) => text(m) === 'late')?.seq].sort(
          (a, b) => (a ?? 0) - (b ?? 0),
        ),
      );
      expect(new Set(many.map(text))).toEqual(new Set([...wanted, 'late']));
    }
    // Messages removed from the stream's front are not there to read.
    await bus.jsm.streams.purge('mixed', { seq: 10 });
    expect((await read(4)).map(text).sort()).toEqual(
      ['9', '12', '15', '18', '21', '24', '27', 'late'].sort(),
    );
  });
});
