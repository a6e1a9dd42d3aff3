import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';
import { NatsServer } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectWithBackoff } from './connect.js';
import { NatsUnavailableError } from './errors.js';
import { quietLogger } from './logger.js';

/**
 * A front for the server that leaves the first connection unanswered (a server too loaded to
 * answer within the client's connect timeout) and forwards the later ones.
 */
async function slowFirstAnswer(target: URL): Promise<{ url: string; close(): void }> {
  const held: Socket[] = [];
  let seen = 0;
  const server: Server = createServer((client) => {
    if (seen++ === 0) {
      held.push(client);
      return;
    }
    const upstream = tcpConnect(Number(target.port), target.hostname);
    client.pipe(upstream).pipe(client);
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('no port');
  return {
    url: `nats://127.0.0.1:${address.port}`,
    close() {
      for (const s of held) s.destroy();
      server.close();
    },
  };
}

describe('connectWithBackoff with giveUpAfterMs (cpctrl: 1.5 s), against a real nats-server', () => {
  let nats: NatsServer;
  const logger = quietLogger('connect-test');

  beforeAll(async () => {
    nats = await NatsServer.start();
  });
  afterAll(async () => {
    await nats?.[Symbol.asyncDispose]();
  });

  it('waits for a server that is there but slow: a connect timeout is not "cannot reach"', async () => {
    // The first attempt times out (2 s, past giveUpAfterMs): fresh-clone CI at load ~20 saw
    // cpctrl say "cannot reach NATS" of a running server this way.
    const front = await slowFirstAnswer(new URL(nats.url));
    try {
      const nc = await connectWithBackoff({
        servers: front.url,
        name: 'slow-server',
        logger,
        giveUpAfterMs: 1_500,
      });
      expect(nc.isClosed()).toBe(false);
      await nc.close();
    } finally {
      front.close();
    }
  });

  it('gives up on a port where nothing listens, naming the server', async () => {
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const address = probe.address();
    if (!address || typeof address === 'string') throw new Error('no port');
    await new Promise((r) => probe.close(r));
    const servers = `nats://127.0.0.1:${address.port}`;
    const attempt = connectWithBackoff({ servers, name: 'refused', logger, giveUpAfterMs: 300 });
    await expect(attempt).rejects.toBeInstanceOf(NatsUnavailableError);
    await expect(attempt).rejects.toThrow(`cannot reach NATS at ${servers}`);
  });
});
