import { Bus, ensureProjectStreams, quietLogger } from '@computepods/bus';
import { DeadLetter, Envelope, envelope, subjects } from '@computepods/protocol';
import { NatsServer, untilDefined } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InFlightBuilds, listenForCancels } from './cancel.js';

const P = 'cancels';

/** The chef's `build.cancel` subscription over a real nats-server. */
describe('listenForCancels (a real nats-server)', () => {
  let nats: NatsServer;
  let bus: Bus;
  const logger = quietLogger('chef-test');

  beforeAll(async () => {
    nats = await NatsServer.start();
    bus = await Bus.connect({ servers: nats.url, service: 'chef', project: P, logger });
    await ensureProjectStreams(bus, P);
  });
  afterAll(async () => {
    await bus?.close();
    await nats?.[Symbol.asyncDispose]();
  });

  it('dead-letters a malformed cancel, naming the field, and still cancels the next', async () => {
    const letters: DeadLetter[] = [];
    const dlq = bus.nc.subscribe(subjects.deadLetter(P, 'chef'), {
      callback: (_e, m) => {
        letters.push(DeadLetter.parse(Envelope.parse(m.json()).body));
      },
    });
    const held = new InFlightBuilds(async () => undefined);
    const signal = held.begin('b-1', 'step');
    const stop = listenForCancels(bus, held);
    try {
      await bus.nc.flush();
      const subject = subjects.buildCancel(P);
      const cancel = (body: unknown) =>
        JSON.stringify(envelope('build.cancel', body, { project: P, source: 'majordomo' }));
      const noReason = cancel({ buildId: 'b-1' });
      bus.nc.publish(subject, '{"oops');
      bus.nc.publish(subject, noReason);
      bus.nc.publish(subject, cancel({ buildId: 'b-1', reason: 'inputs changed' }));
      await untilDefined('two letters and the cancel', async () =>
        letters.length === 2 && signal.aborted ? true : undefined,
      );
      expect(signal.reason).toBe('inputs changed');
      expect(letters.map((l) => [l.data, l.issues[0]?.path])).toEqual([
        ['{"oops', ''],
        [noReason, 'body.reason'],
      ]);
    } finally {
      stop();
      dlq.unsubscribe();
    }
  });
});
