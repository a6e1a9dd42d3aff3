import { Sshd } from '@computepods/testkit';
import { Client } from 'ssh2';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { SshPool } from './ssh-pool.js';
import type { SshTarget } from './target.js';

// A connection that completes after its pool was closed is ended at once. Ending it writes a
// goodbye to the server; if the server is gone by then the socket fails (EPIPE) and ssh2 emits
// 'error' on the client. Without a listener that is an uncaught exception: a fresh-clone CI run
// saw it ("write EPIPE", level client-socket) after ssh-outage.test stopped its sshd, and in a
// runner it would end the process.
describe('SshPool: a connection that opens after close()', () => {
  let sshd: Sshd;
  let target: SshTarget;
  beforeAll(async () => {
    sshd = await Sshd.start();
    target = sshd.target();
  });
  afterAll(async () => {
    await sshd?.[Symbol.asyncDispose]();
  });

  it('is ended with a listener for its late socket error', async () => {
    const ended: Client[] = [];
    const end = vi.spyOn(Client.prototype, 'end').mockImplementation(function (this: Client) {
      ended.push(this);
      return this;
    });
    try {
      const pool = new SshPool({ minOpenIntervalMs: 0 });
      const exec = pool.exec(target, 'true').catch((e: unknown) => e);
      await pool.close(); // while the connection is being opened
      expect(await exec).toMatchObject({ code: 'TRANSPORT_POOL_CLOSED' });
      await vi.waitFor(() => expect(ended).toHaveLength(1), { timeout: 30_000 });
      const client = ended[0] as Client;
      // What ssh2 does when the goodbye cannot be written: throws here if nobody listens.
      const epipe = Object.assign(new Error('write EPIPE'), {
        code: 'EPIPE',
        level: 'client-socket',
      });
      expect(() => client.emit('error', epipe)).not.toThrow();
      client.destroy();
    } finally {
      end.mockRestore();
    }
  });
});
