import { Sshd } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SshPool } from './ssh-pool.js';

// A server whose MaxSessions is below the pool's channel bound refuses channels; the pool
// must hold those requests back and retry them (they never started), not fail them.
describe('SshPool when the server refuses channels', () => {
  let sshd: Sshd;
  beforeAll(async () => {
    sshd = await Sshd.start({ maxSessions: 3 });
  });
  afterAll(async () => {
    await sshd?.[Symbol.asyncDispose]();
  });

  it('retries refused channel opens until every command has run', async () => {
    await using pool = new SshPool({
      minOpenIntervalMs: 0,
      channelsPerConnection: 10,
      maxConnectionsPerHost: 1,
    });
    const results = await Promise.all(
      Array.from({ length: 12 }, (_, i) => pool.exec(sshd.target(), `sleep 0.2; echo ${i}`)),
    );
    expect(results.map((r) => r.stdout)).toEqual(Array.from({ length: 12 }, (_, i) => `${i}\n`));
    const s = pool.stats();
    expect(s.connectionsOpened).toBe(1);
    expect(s.channelRetries).toBeGreaterThan(0);
    expect(s.channelsOpened).toBe(12 + s.channelRetries);
  });
});
