import { Bus, ensureProjectStreams, quietLogger } from '@computepods/bus';
import { buckets, RulesDeclared, streams, subjects } from '@computepods/protocol';
import { NatsServer, until } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { watchChefLiveness } from './liveness.js';

const P = 'purge';

/**
 * Retiring a dead chef purges its queued requests. One purge that emptied the builds stream,
 * then nats-server killed -9 soon after, restarted the stream at sequence 0 (2.9.10) while the
 * chefs' durable consumers kept their delivered sequence: every later request was skipped and the
 * chefs waited for ever (found by test/chaos, seed 992501476). Here: the queue is empty after the
 * retirement (purge short of the last message, that one deleted alone), the stream keeps its
 * sequence across a kill -9, and a request sent after the restart reaches a chef's consumer.
 * (The crash window is narrow: this test did not catch the one-purge version; the chaos seed
 * and a bare-server probe, purge then kill -9 at once, did.)
 */
describe('retiring a chef leaves its queue empty and its consumers working after a crash', () => {
  let nats: NatsServer;
  let bus: Bus;

  beforeAll(async () => {
    nats = await NatsServer.start();
    const logger = quietLogger('liveness-purge');
    bus = await Bus.connect({
      servers: nats.url,
      service: 'majordomo',
      project: P,
      logger,
      discoverable: false,
    });
    await ensureProjectStreams(bus, P);
  }, 60_000);
  afterAll(async () => {
    await bus?.close();
    await nats?.[Symbol.asyncDispose]();
  });

  it('purges the dead chef’s requests, and a request after a kill -9 of the server is delivered', async () => {
    const builds = streams.builds(P);
    for (const chef of ['dead', 'live'])
      await bus.ensureConsumer({
        stream: builds,
        durable: `chef-${chef}`,
        filterSubject: subjects.buildRequest(P, chef),
      });
    // The live chef took and acknowledged its requests; the dead one's are still queued.
    for (let i = 0; i < 3; i++) await bus.js.publish(subjects.buildRequest(P, 'live'), `live ${i}`);
    const live = await bus.js.consumers.get(builds, 'chef-live');
    for await (const m of await live.fetch({ max_messages: 3, expires: 5_000 })) await m.ackAck();
    for (let i = 0; i < 3; i++) await bus.js.publish(subjects.buildRequest(P, 'dead'), `dead ${i}`);

    const rules = await bus.kv(buckets.rules(P), RulesDeclared);
    // Its $SRV identity answers nothing: retired after three PINGs.
    await rules.put('dead', {
      chef: 'dead',
      pod: 'p',
      rules: [],
      srv: { name: 'chef', id: 'gone' },
    });
    const stop = await watchChefLiveness(bus, rules, 60_000, 100);
    // The server killed as soon as the queue is empty: before it has written the purge down.
    const end = performance.now() + 20_000;
    while ((await bus.jsm.streams.info(builds)).state.messages > 0 && performance.now() < end)
      await new Promise((r) => setTimeout(r, 2));
    stop();
    const state = (await bus.jsm.streams.info(builds)).state;
    expect(state).toMatchObject({ messages: 0, last_seq: 6 });
    expect(await rules.keys()).not.toContain('dead');

    await nats.kill9();
    await nats.start();
    let lastErr = '';
    await until(
      async () =>
        (await bus.jsm.streams.info(builds).catch((err: Error) => {
          lastErr = `${err.name}: ${err.message}`;
          return undefined;
        })) !== undefined,
      'the server back',
      20_000,
      () =>
        `last answer: ${lastErr}; client status ${bus.nc.isClosed() ? 'closed' : 'open'}\nserver:\n${nats.output.slice(-3000)}`,
    );
    expect((await bus.jsm.streams.info(builds)).state.last_seq).toBe(6);
    await bus.js.publish(subjects.buildRequest(P, 'live'), 'after the restart');
    const got: string[] = [];
    for await (const m of await live.fetch({ max_messages: 1, expires: 5_000 })) {
      got.push(m.string());
      await m.ackAck();
    }
    expect(got).toEqual(['after the restart']);
  });
});
