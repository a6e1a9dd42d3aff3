import { CpError, subjects } from '@computepods/protocol';
import { NatsServer } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Bus } from './bus.js';
import {
  isRetryable,
  MessageInvalidError,
  NatsUnavailableError,
  RemoteError,
  StorageQuotaError,
} from './errors.js';
import { quietLogger } from './logger.js';
import { ensureProjectStreams } from './project.js';

const P = 'retrytest';
const logger = quietLogger('retry-test');

async function rejection(p: Promise<unknown>): Promise<Error> {
  return p.then(
    () => expect.unreachable('it resolved'),
    (err: unknown) => err as Error,
  );
}

describe('isRetryable on real nats.js errors and the bus errors', () => {
  let nats: NatsServer;
  let bus: Bus;

  beforeAll(async () => {
    nats = await NatsServer.start();
    bus = await Bus.connect({ servers: nats.url, service: 'tester', project: P, logger });
    await ensureProjectStreams(bus, P);
  });
  afterAll(async () => {
    await bus?.close();
    await nats?.[Symbol.asyncDispose]();
  });

  it('decides by class: transient nats failures yes, refusals and closed connections no', async () => {
    const silent = bus.nc.subscribe('retry.silent');
    const noResponders = await rejection(bus.nc.request('retry.nobody', ''));
    const timeout = await rejection(bus.nc.request('retry.silent', '', { timeout: 100 }));
    const streamMissing = await rejection(bus.jsm.streams.info('NO_SUCH_STREAM'));
    // What a publish meets while a clustered stream has no leader: no responders, which nats.js
    // throws as JetStreamNotEnabled (here: no stream takes the subject at all).
    const leaderless = await rejection(bus.js.publish('retry.nostream', ''));
    expect(leaderless.name).toBe('JetStreamNotEnabled');
    const other = await Bus.connect({ servers: nats.url, service: 'other', project: P, logger });
    await other.nc.close();
    const closed = await rejection(other.nc.request('retry.silent', ''));
    silent.unsubscribe();

    const cases: [string, unknown, boolean][] = [
      ['no responders', noResponders, true],
      ['a request timeout', timeout, true],
      ['a JetStream API refusal (stream not found)', streamMissing, false],
      ['a JetStream publish nobody answered (a stream between leaders)', leaderless, true],
      [
        'JetStream off for the account (API code 10039)',
        Object.assign(new Error('jetstream not enabled for account'), {
          name: 'JetStreamNotEnabled',
          cause: Object.assign(new Error('x'), { name: 'JetStreamApiError', status: 503 }),
        }),
        false,
      ],
      ['a closed connection', closed, false],
      ['NATS unreachable', new NatsUnavailableError('nats://x'), true],
      ['an invalid message', new MessageInvalidError('bad'), false],
      ['a quota refusal', new StorageQuotaError(P, 's'), false],
      ['a remote CP_UNAVAILABLE', new RemoteError('CP_UNAVAILABLE', 'x'), true],
      ['a remote CP_INVALID', new RemoteError('CP_INVALID', 'x'), false],
    ];
    for (const [what, err, want] of cases) expect(isRetryable(err), what).toBe(want);
    for (const e of [new NatsUnavailableError('x'), new RemoteError('CP_X', 'x')])
      expect(e).toBeInstanceOf(CpError);
    expect(new RemoteError('CP_SOMETHING_NEW', 'x').code).toBe('CP_SOMETHING_NEW');
  });

  it('an unreadable credentials file is a CpError naming it, never retried', async () => {
    const err = await rejection(
      Bus.connect({
        servers: nats.url,
        service: 'other',
        project: P,
        logger,
        credsFile: '/nonexistent/computepods.creds',
      }),
    );
    expect(err).toBeInstanceOf(CpError);
    expect(err).toMatchObject({ code: 'CP_NATS_CREDS', retryable: false });
    expect(err.message).toMatch(
      /cannot read NATS credentials file \/nonexistent\/computepods\.creds/,
    );
    expect(isRetryable(err)).toBe(false);
  });

  it('a publish on a connection closed under the bus fails at once, not after retryForMs', async () => {
    const other = await Bus.connect({ servers: nats.url, service: 'other', project: P, logger });
    await other.nc.close();
    const event = { kind: 'changed' as const, path: 'a.txt', size: 1, mtimeNs: '1' };
    const body = { pod: 'p', events: [{ ...event, sha256: 'c'.repeat(64) }] };
    // Before one rule, "closed" in the message text kept this publish retrying for an hour.
    const err = await rejection(
      other.publish('files.changed', subjects.filesChanged(P, 'p'), body, {
        retryForMs: 3_600_000,
      }),
    );
    expect(err.name).toBe('ClosedConnectionError');
  });
});
