import { NatsServer } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Bus } from './bus.js';
import { thenClose } from './lifecycle.js';
import { quietLogger } from './logger.js';

describe('thenClose: main.ts stops its service, then closes the bus it connected (a real nats-server)', () => {
  let nats: NatsServer;
  const logger = quietLogger('lifecycle-test');
  const connect = () => Bus.connect({ servers: nats.url, service: 'svc', project: 'lc', logger });

  beforeAll(async () => {
    nats = await NatsServer.start();
  });
  afterAll(async () => {
    await nats?.[Symbol.asyncDispose]();
  });

  it('stops the service while the bus is still open, then closes the bus', async () => {
    const bus = await connect();
    const seen: string[] = [];
    await thenClose(
      {
        async stop() {
          // A service's stop still talks to NATS (drains consumers, releases a lease).
          await bus.nc.flush();
          seen.push(bus.nc.isClosed() ? 'stopped after close' : 'stopped while open');
        },
      },
      bus,
    ).stop();
    expect(seen).toEqual(['stopped while open']);
    expect(bus.nc.isClosed()).toBe(true);
  });

  it('closes the bus even when the service fails to stop, and reports that failure', async () => {
    const bus = await connect();
    const failing = thenClose(
      {
        async stop() {
          throw new Error('drain failed');
        },
      },
      bus,
    );
    await expect(failing.stop()).rejects.toThrow('drain failed');
    expect(bus.nc.isClosed()).toBe(true);
  });
});
