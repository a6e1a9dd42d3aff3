import { DeadLetter, Envelope, streams, subjects } from '@computepods/protocol';
import { NatsServer } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { Bus } from './bus.js';
import { RemoteError } from './errors.js';
import { quietLogger } from './logger.js';
import { DLQ_MAX_BYTES, DLQ_MAX_MSGS, ensureProjectStreams } from './project.js';

const P = 'dlqtest';
const sha = 'c'.repeat(64);

/** The next dead letter on the project's subject that satisfies `ok`. */
function nextLetter(bus: Bus, ok: (d: DeadLetter) => boolean): Promise<DeadLetter> {
  return new Promise((resolve) => {
    const sub = bus.nc.subscribe(subjects.deadLetter(P, 'tester'), {
      callback: (_e, m) => {
        const d = DeadLetter.parse(Envelope.parse(m.json()).body);
        if (!ok(d)) return;
        sub.unsubscribe();
        resolve(d);
      },
    });
  });
}

// Regressions from the fuzzing campaign: what fails validation anywhere is dead-lettered with
// its fields named, and answered as a validation error, not an internal one.
describe('dead letters and validation errors (a real nats-server)', () => {
  let nats: NatsServer;
  let bus: Bus;
  const logger = quietLogger('dlq-test');

  beforeAll(async () => {
    nats = await NatsServer.start();
    bus = await Bus.connect({ servers: nats.url, service: 'tester', project: P, logger });
    await ensureProjectStreams(bus, P);
  });
  afterAll(async () => {
    await bus?.close();
    await nats?.[Symbol.asyncDispose]();
  });

  it('dead-letters, at once, a message whose handler throws a ZodError, paths as strings', async () => {
    let calls = 0;
    const letter = nextLetter(bus, (d) => d.data.includes('zod.txt'));
    const consumer = await bus.consume({
      stream: streams.files(P),
      durable: 'zod-test',
      accept: ['files.changed'],
      maxDeliver: 5,
      handler: async () => {
        calls++;
        z.object({ out: z.object({ n: z.number() }) }).parse({ out: { n: 'x' } });
      },
    });
    await bus.publish('files.changed', subjects.filesChanged(P, 'p1'), {
      pod: 'p1',
      events: [{ kind: 'changed', path: 'zod.txt', size: 1, mtimeNs: '1', sha256: sha }],
    });
    const d = await letter;
    expect(d.issues).toEqual([{ path: 'out.n', message: expect.any(String) }]);
    expect(d.deliveries).toBe(1);
    expect(calls).toBe(1);
    await consumer.stop();
  });

  it('dead-letters an invalid request and answers it as a validation error naming the field', async () => {
    bus.serve('zod', z.object({ n: z.number() }), async () => {
      z.object({ depth: z.number().max(3) }).parse({ depth: 9 });
    });
    const bad = nextLetter(
      bus,
      (d) => d.subject.endsWith('.api.zod') && d.data.includes('"n":"x"'),
    );
    const err = await bus.request('zod', { n: 'x' }, z.unknown()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RemoteError);
    expect((err as RemoteError).code).toBe('CP_MESSAGE_INVALID');
    expect((err as RemoteError).field).toBe('n');
    expect((await bad).issues[0]?.path).toBe('n');
    // A ZodError from the handler is about the request too, not an internal failure.
    const inner = await bus.request('zod', { n: 1 }, z.unknown()).catch((e: unknown) => e);
    expect((inner as RemoteError).code).toBe('CP_MESSAGE_INVALID');
    expect((inner as RemoteError).field).toBe('depth');
  });

  it('bounds the dead-letter stream (a flood of bad input must not fill the quota)', async () => {
    const info = await bus.jsm.streams.info(streams.deadLetters(P));
    expect(info.config.max_msgs).toBe(DLQ_MAX_MSGS);
    expect(info.config.max_bytes).toBe(DLQ_MAX_BYTES);
    // A stream made before the limits existed gets them.
    await bus.jsm.streams.update(streams.deadLetters(P), { max_msgs: -1, max_bytes: -1 });
    await ensureProjectStreams(bus, P);
    const again = await bus.jsm.streams.info(streams.deadLetters(P));
    expect([again.config.max_msgs, again.config.max_bytes]).toEqual([DLQ_MAX_MSGS, DLQ_MAX_BYTES]);
  });
});
