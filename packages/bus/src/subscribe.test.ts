import { envelope } from '@computepods/protocol';
import { jsonLines, NatsServer, untilDefined } from '@computepods/testkit';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Bus } from './bus.js';
import { SUBSCRIPTION_ENDED } from './subscribe.js';

const P = 'subtest';
const DENIED = `cp.${P}.build.cancel`;
const ALLOWED = `cp.${P}.task.control`;

/**
 * A subscription the server refuses (a permissions violation) over a real nats-server whose one
 * user may not subscribe to DENIED. nats.js then calls the callback with the error and an empty
 * object for a message: the service logs it, naming the subject, and goes on; a handler never
 * sees that object (read as a message it threw, and the process died on the rejection).
 */
describe('a subscription the server refuses', () => {
  let nats: NatsServer;
  let bus: Bus;
  const log = jsonLines();
  const logs = log.lines;

  beforeAll(async () => {
    nats = await NatsServer.start({
      configLines: () => [
        'authorization {',
        '  users = [{ user: "limited", password: "limited-pw",',
        `    permissions: { subscribe: { deny: ["${DENIED}"] } } }]`,
        '}',
        'no_auth_user: limited',
      ],
    });
    bus = await Bus.connect({
      servers: nats.url,
      service: 'refused',
      project: P,
      logger: pino({ level: 'warn' }, log.stream),
    });
  });
  afterAll(async () => {
    await bus?.close();
    await nats?.[Symbol.asyncDispose]();
  });

  it('is logged with its subject; the handler sees no message and the bus goes on', async () => {
    const denied: unknown[] = [];
    bus.listen(DENIED, { accept: ['build.cancel'], handler: (m) => void denied.push(m) });
    await untilDefined('the refusal logged', async () =>
      logs.find((l) => l.msg === SUBSCRIPTION_ENDED),
    );
    const refusal = logs.find((l) => l.msg === SUBSCRIPTION_ENDED);
    expect(refusal).toMatchObject({ level: 50, subject: DENIED });
    expect(refusal?.err).toMatch(/permissions violation/i);
    expect(denied).toEqual([]);
    expect(logs.filter((l) => l.msg !== SUBSCRIPTION_ENDED)).toEqual([]);

    // The connection and other subscriptions go on.
    const got: string[] = [];
    const sub = bus.listen(ALLOWED, {
      accept: ['task.control'],
      handler: (m) => void got.push(m.body.taskId),
    });
    await bus.nc.flush();
    bus.nc.publish(
      ALLOWED,
      JSON.stringify(
        envelope('task.control', { taskId: 't-1', action: 'kill' }, { project: P, source: 't' }),
      ),
    );
    await untilDefined('the allowed message', async () => (got.length === 1 ? true : undefined));
    expect(got).toEqual(['t-1']);
    sub.unsubscribe();
  });
});
