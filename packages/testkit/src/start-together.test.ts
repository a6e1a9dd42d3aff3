import { describe, expect, it } from 'vitest';
import { NatsServer } from './nats-server.js';
import { startTogether } from './start-together.js';

describe('startTogether', () => {
  it('returns every server when all start', async () => {
    const [a, b] = await startTogether([NatsServer.start(), NatsServer.start()]);
    try {
      expect(a.running && b.running).toBe(true);
      expect(a.url).not.toBe(b.url);
    } finally {
      await Promise.all([a[Symbol.asyncDispose](), b[Symbol.asyncDispose]()]);
    }
  }, 60_000);

  it('stops the servers that started when another start fails, and throws its failure', async () => {
    let started: NatsServer | undefined;
    const ok = NatsServer.start().then((s) => {
      started = s;
      return s;
    });
    // A start that fails after the other is up: what a Promise.all left running.
    const bad = ok.then(() => Promise.reject(new Error('the second server could not start')));
    await expect(startTogether([ok, bad as Promise<NatsServer>])).rejects.toThrow(
      'the second server could not start',
    );
    expect(started?.running).toBe(false);
  }, 60_000);
});
