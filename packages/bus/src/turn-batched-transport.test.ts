import { readFileSync } from 'node:fs';
import { NatsServer } from '@computepods/testkit';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectWithBackoff } from './connect.js';
import { quietLogger } from './logger.js';
import { withNextWrite } from './turn-batched-transport.js';

/** write(2)/writev(2) calls this thread has made (the event loop's: sockets are written here). */
function writeSyscalls(): number {
  const m = /^syscw:\s*(\d+)$/m.exec(readFileSync('/proc/thread-self/io', 'utf8'));
  if (!m?.[1]) throw new Error('no syscw in /proc/thread-self/io');
  return Number(m[1]);
}

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Publishes `n` messages in one event-loop turn, each in its own microtask batch (as a
 * service's chained awaits do), and returns the write syscalls the turn cost.
 */
async function publishInOneTurn(nc: NatsConnection, subject: string, n: number): Promise<number> {
  await nextTurn();
  const before = writeSyscalls();
  await new Promise<void>((resolve) => {
    setImmediate(async () => {
      for (let i = 0; i < n; i++) {
        nc.publish(subject, String(i));
        await Promise.resolve();
        await Promise.resolve();
      }
      resolve();
    });
  });
  // The turn's writes are released in its check phase: one more turn and they are out.
  await nextTurn();
  await nextTurn();
  return writeSyscalls() - before;
}

describe('turn-batched NATS transport', () => {
  let nats: NatsServer;
  let reader: NatsConnection;
  const logger = quietLogger('turn-batched-test');

  beforeAll(async () => {
    nats = await NatsServer.start();
    reader = await connect({ servers: nats.url });
  });
  afterAll(async () => {
    await reader?.close();
    await nats?.[Symbol.asyncDispose]();
  });

  /** Subscribes and resolves with the payloads once `n` arrived. */
  async function collect(subject: string, n: number): Promise<() => Promise<string[]>> {
    const got: string[] = [];
    let done: (v: string[]) => void = () => {};
    const all = new Promise<string[]>((resolve) => {
      done = resolve;
    });
    reader.subscribe(subject, {
      callback: (_err, m) => {
        got.push(m.string());
        if (got.length === n) done(got);
      },
    });
    await reader.flush();
    return () => all;
  }

  it('writes a turn of microtask-separated publishes in one syscall, all delivered in order', async () => {
    const n = 40;
    const expected = Array.from({ length: n }, (_, i) => String(i));

    // nats.js's own transport, as the measure's check: a write per microtask batch.
    const plain = await connect({ servers: nats.url });
    const plainGot = await collect('plain', n);
    const plainWrites = await publishInOneTurn(plain, 'plain', n);
    expect(await plainGot()).toEqual(expected);
    expect(plainWrites).toBeGreaterThanOrEqual(n);
    await plain.close();

    const batched = await connectWithBackoff({ servers: nats.url, name: 'batched', logger });
    const batchedGot = await collect('batched', n);
    const batchedWrites = await publishInOneTurn(batched, 'batched', n);
    expect(await batchedGot()).toEqual(expected);
    expect(batchedWrites).toBeLessThanOrEqual(2);
    await batched.close();
  });

  // (A close() right after a publish drops it with nats.js's own transport too: drain is the
  // way to leave with nothing lost, as Bus.close does.)
  it('a drain in the same turn still sends what was published before it', async () => {
    const batched = await connectWithBackoff({ servers: nats.url, name: 'draining', logger });
    const got = await collect('draining', 3);
    batched.publish('draining', '0');
    batched.publish('draining', '1');
    batched.publish('draining', '2');
    await batched.drain();
    expect(await got()).toEqual(['0', '1', '2']);
  });

  it('requests and replies go through (a round trip per turn)', async () => {
    const batched = await connectWithBackoff({ servers: nats.url, name: 'requests', logger });
    const sub = reader.subscribe('echo', {
      callback: (_e, m) => {
        m.respond(`re:${m.string()}`);
      },
    });
    await reader.flush();
    const answers = await Promise.all(
      Array.from({ length: 20 }, (_, i) => batched.request('echo', String(i), { timeout: 30_000 })),
    );
    expect(answers.map((a) => a.string())).toEqual(Array.from({ length: 20 }, (_, i) => `re:${i}`));
    sub.unsubscribe();
    await batched.close();
  });

  it('sends what waits for the next write in the next turn that writes, after the frames of that turn', async () => {
    const batched = await connectWithBackoff({ servers: nats.url, name: 'riding', logger });
    const got = await collect('riding', 4);
    await nextTurn();
    const before = writeSyscalls();
    // Long enough never to be the reason it goes.
    withNextWrite(batched, () => batched.publish('riding', 'ride'), 600_000);
    await nextTurn();
    await nextTurn();
    expect(writeSyscalls() - before).toBe(0);
    const writes = await publishInOneTurn(batched, 'riding', 3);
    expect(writes).toBeLessThanOrEqual(2);
    // In that turn's write (after its first frame: the ride's publish is made as it is sent).
    expect((await got()).sort()).toEqual(['0', '1', '2', 'ride']);
    await batched.close();
  });

  it('sends what is held in a turn that writes already with the write of that turn', async () => {
    const batched = await connectWithBackoff({ servers: nats.url, name: 'riding-now', logger });
    const got = await collect('riding-now', 2);
    await nextTurn();
    const before = writeSyscalls();
    let sent = false;
    await new Promise<void>((resolve) => {
      setImmediate(async () => {
        batched.publish('riding-now', 'first');
        await Promise.resolve();
        await Promise.resolve();
        withNextWrite(
          batched,
          () => {
            sent = true;
            batched.publish('riding-now', 'ride');
          },
          600_000,
        );
        resolve();
      });
    });
    await nextTurn();
    await nextTurn();
    expect(sent).toBe(true);
    expect(writeSyscalls() - before).toBeLessThanOrEqual(1);
    expect(await got()).toEqual(['first', 'ride']);
    await batched.close();
  });

  it('sends what waits for the next write after its longest wait when nothing else writes', async () => {
    const batched = await connectWithBackoff({ servers: nats.url, name: 'riding-late', logger });
    const got = await collect('riding-late', 1);
    withNextWrite(batched, () => batched.publish('riding-late', 'ride'), 50);
    expect(await got()).toEqual(['ride']);
    await batched.close();
  });

  it('keeps the earliest longest wait of what waits for the next write', async () => {
    const batched = await connectWithBackoff({ servers: nats.url, name: 'riding-due', logger });
    const got = await collect('riding-due', 2);
    // Past the connection's opening exchange (the server's first PING is answered meanwhile).
    await batched.flush();
    await nextTurn();
    withNextWrite(batched, () => batched.publish('riding-due', 'patient'), 600_000);
    withNextWrite(batched, () => batched.publish('riding-due', 'hurried'), 50);
    expect(await got()).toEqual(['patient', 'hurried']);
    await batched.close();
  });

  it('drops what waits for the next write when it cannot be sent, without an error', async () => {
    const batched = await connectWithBackoff({ servers: nats.url, name: 'riding-closed', logger });
    await batched.close();
    let tried = false;
    withNextWrite(
      batched,
      () => {
        tried = true;
        batched.publish('riding-closed', 'ride'); // throws: closed
      },
      0,
    );
    // Timers of one length fire in the order they were set: this one after the ride's.
    await new Promise((r) => setTimeout(r, 0));
    expect(tried).toBe(true);
  });
});
