import { kvKey } from '@computepods/protocol';
import { NatsServer, until } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { Bus } from './bus.js';
import { isWrongLastSequence } from './errors.js';
import { quietLogger } from './logger.js';
import { failureShape, refused } from './test-failures.js';

/** What callers read of a failure, and whether it is a wrong-last-sequence refusal. */
function shape(err: Error) {
  return { ...failureShape(err), wrongLast: isWrongLastSequence(err) };
}

describe('acked publisher (Bus.jsPublish, TypedKv writes) against nats.js js.publish', () => {
  let nats: NatsServer;
  let bus: Bus;
  const logger = quietLogger('acked-test');

  beforeAll(async () => {
    nats = await NatsServer.start();
    bus = await Bus.connect({ servers: nats.url, service: 'tester', project: 'acked', logger });
    await bus.jsm.streams.add({ name: 'ACKED', subjects: ['acked.>'] });
  });
  afterAll(async () => {
    await bus?.close();
    await nats?.[Symbol.asyncDispose]();
  });

  it('times its ack wait on the monotonic clock: the wall clock jumping ahead times nothing out', async () => {
    // A VM's wall clock can be set forward (seen as a 20 s wait failing after 5 s in CI): a
    // deadline taken from Date.now() then passes at once, and every publish waiting for its
    // ack fails. Here the stream's ack is held back by answering the request ourselves, late.
    const answered: string[] = [];
    const sub = bus.nc.subscribe('jump.x', {
      callback: (_err, m) => {
        answered.push(m.reply ?? '');
      },
    });
    await bus.nc.flush();
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      const waiting = bus.jsPublish('jump.x', 'x', { timeoutMs: 2_000 });
      await until(() => answered.length === 1, 'the publish');
      vi.setSystemTime(Date.now() + 3_600_000);
      // Past the publisher's sweep (250 ms): with a wall-clock deadline it is rejected now.
      await new Promise((r) => setTimeout(r, 600));
      bus.nc.publish(answered[0] as string, JSON.stringify({ stream: 'JUMP', seq: 7 }));
      await expect(waiting).resolves.toMatchObject({ stream: 'JUMP', seq: 7 });
    } finally {
      vi.useRealTimers();
      sub.unsubscribe();
    }
  });

  it('acks as js.publish does: stream, sequence, duplicate by msg id', async () => {
    const a = await bus.jsPublish('acked.a', 'one', { msgID: 'm1' });
    const b = await bus.js.publish('acked.a', 'two', { msgID: 'm2' });
    const again = await bus.jsPublish('acked.a', 'one', { msgID: 'm1' });
    expect(a).toMatchObject({ stream: 'ACKED', seq: 1, duplicate: false });
    expect(b).toMatchObject({ stream: 'ACKED', seq: 2, duplicate: false });
    expect(again).toMatchObject({ stream: 'ACKED', seq: 1, duplicate: true });
    const stored = await bus.jsm.streams.getMessage('ACKED', { seq: 1 });
    expect(stored?.string()).toBe('one');
  });

  it('fails as js.publish does: wrong last sequence, no stream, no answer', async () => {
    await bus.jsPublish('acked.last', 'x');
    const ours = await refused(bus.jsPublish('acked.last', 'y', { expectLastSubjectSequence: 1 }));
    const theirs = await refused(
      bus.js.publish('acked.last', 'y', { expect: { lastSubjectSequence: 1 } }),
    );
    expect(shape(ours)).toEqual(shape(theirs));
    expect(shape(ours)).toMatchObject({ wrongLast: true, retryable: false });

    // No stream takes the subject: nobody answers (a stream between leaders, in a cluster).
    const noneOurs = await refused(bus.jsPublish('nostream.x', 'x'));
    const noneTheirs = await refused(bus.js.publish('nostream.x', 'x'));
    expect(shape(noneOurs)).toEqual(shape(noneTheirs));
    expect(shape(noneOurs).names).toEqual(['JetStreamNotEnabled', 'RequestError', 'NoResponders']);
    expect(shape(noneOurs).retryable).toBe(true);

    // Someone listens but never answers.
    const silent = bus.nc.subscribe('silent.x', { callback: () => {} });
    await bus.nc.flush();
    const lateOurs = await refused(bus.jsPublish('silent.x', 'x', { timeoutMs: 300 }));
    const lateTheirs = await refused(bus.js.publish('silent.x', 'x', { timeout: 300 }));
    silent.unsubscribe();
    expect(shape(lateOurs)).toEqual(shape(lateTheirs));
    expect(shape(lateOurs)).toMatchObject({ names: ['TimeoutError'], retryable: true });
  });

  it('TypedKv writes through it keep create/update semantics, a deleted key included', async () => {
    const kv = await bus.kv('acked_kv', z.object({ n: z.number() }));
    const r1 = await kv.create('k', { n: 1 });
    expect(shape(await refused(kv.create('k', { n: 2 }))).wrongLast).toBe(true);
    const r2 = await kv.update('k', { n: 2 }, r1);
    expect(shape(await refused(kv.update('k', { n: 3 }, r1))).wrongLast).toBe(true);
    expect(await kv.get('k')).toEqual({ value: { n: 2 }, revision: r2 });
    await kv.delete('k');
    // nats.js's create takes a deleted key; so does ours (it asks nats.js after the refusal).
    const r3 = await kv.create('k', { n: 4 });
    expect(r3).toBeGreaterThan(r2);
    const r4 = await kv.put('k', { n: 5 });
    expect(await kv.get('k')).toEqual({ value: { n: 5 }, revision: r4 });
  });

  it('TypedKv deletes through it: the marker nats.js writes and reads as a delete', async () => {
    const kv = await bus.kv('acked_del', z.object({ n: z.number() }));
    await kv.put('a b/c', { n: 1 });
    const request = vi.spyOn(bus.nc, 'request');
    try {
      await kv.delete('a b/c');
      expect(request).not.toHaveBeenCalled();
    } finally {
      request.mockRestore();
    }
    expect(await kv.get('a b/c')).toBeUndefined();
    // As nats.js's own delete leaves it: an entry whose operation is DEL, a key no longer listed.
    const ours = await kv.kv.get(kvKey('a b/c'));
    await kv.put('theirs', { n: 2 });
    await kv.kv.delete(kvKey('theirs'));
    const theirs = await kv.kv.get(kvKey('theirs'));
    expect({ op: ours?.operation, length: ours?.length }).toEqual({
      op: theirs?.operation,
      length: theirs?.length,
    });
    expect(ours?.operation).toBe('DEL');
    expect(await kv.keys()).toEqual([]);
  });

  it('a publish waiting for its ack fails when the connection closes', async () => {
    const other = await Bus.connect({
      servers: nats.url,
      service: 'closer',
      project: 'acked',
      logger,
    });
    const silent = bus.nc.subscribe('silent.close', { callback: () => {} });
    await bus.nc.flush();
    const waiting = refused(other.jsPublish('silent.close', 'x', { timeoutMs: 60_000 }));
    await other.nc.flush();
    await other.nc.close();
    expect((await waiting).name).toBe('ClosedConnectionError');
    silent.unsubscribe();
  });
});
