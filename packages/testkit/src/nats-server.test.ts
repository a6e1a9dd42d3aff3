import { connect } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BinaryMissingError } from './errors.js';
import { NatsServer } from './nats-server.js';
import { ephemeralRange, tryReserve } from './reserved-port.js';

describe('NatsServer', () => {
  let nats: NatsServer;
  beforeAll(async () => {
    nats = await NatsServer.start();
  });
  afterAll(async () => {
    await nats?.[Symbol.asyncDispose]();
  });

  it('runs a real JetStream server on a free loopback port', async () => {
    expect(nats.port).toBeGreaterThan(0);
    const nc = await connect({ servers: nats.url });
    const info = nc.info;
    expect(info?.jetstream).toBe(true);
    await nc.close();
  });

  it('restarts on the same port and store', async () => {
    const port = nats.port;
    await nats.stop();
    expect(nats.running).toBe(false);
    // Reserved while it is down, outside the kernel's ephemeral range (reserved-port.ts).
    const [lo, hi] = ephemeralRange();
    expect(port < lo || port > hi).toBe(true);
    expect(tryReserve(port)).toBeUndefined();
    await nats.start();
    expect(nats.port).toBe(port);
    const nc = await connect({ servers: nats.url });
    await nc.close();
  });

  it('says clearly when the binary is missing', async () => {
    const saved = process.env.NATS_SERVER_BIN;
    process.env.NATS_SERVER_BIN = 'no-such-nats-server-binary';
    try {
      await expect(NatsServer.start()).rejects.toBeInstanceOf(BinaryMissingError);
      await expect(NatsServer.start()).rejects.toThrow(/scripts\/setup/);
    } finally {
      if (saved === undefined) delete process.env.NATS_SERVER_BIN;
      else process.env.NATS_SERVER_BIN = saved;
    }
  });
});
