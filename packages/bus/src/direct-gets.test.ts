import { NatsServer } from '@computepods/testkit';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Bucket, type KvEntry } from '@nats-io/kv';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { Bus } from './bus.js';
import { DirectGets } from './direct-gets.js';
import { quietLogger } from './logger.js';
import { MuxedReplies } from './muxed-replies.js';
import { failureShape, refused } from './test-failures.js';

const Value = z.object({ n: z.number() });

/** What callers read of an entry (nats.js's and ours are objects of the same class). */
const entryOf = (e: KvEntry | null | undefined) =>
  e && { key: e.key, revision: e.revision, operation: e.operation, value: e.string() };

const shape = failureShape;

/**
 * KV reads by direct get on the connection's muxed replies (direct-gets.ts) answer as nats.js's
 * Bucket.get does: the same entries (a value, a deleted key, none) and the same failures. A real
 * nats-server.
 */
describe('DirectGets against nats.js Bucket.get (a real nats-server)', () => {
  let nats: NatsServer;
  let bus: Bus;
  const logger = quietLogger('direct-gets-test');

  beforeAll(async () => {
    nats = await NatsServer.start();
    bus = await Bus.connect({ servers: nats.url, service: 'tester', project: 'dget', logger });
  });
  afterAll(async () => {
    await bus?.close();
    await nats?.[Symbol.asyncDispose]();
  });

  it("TypedKv.get reads through it: nats.js's request is never asked", async () => {
    const kv = await bus.kv('dget_typed', Value);
    const raw = await bus.kv('dget_typed', z.unknown());
    const rev = await kv.put('a b/c', { n: 1 });
    await raw.put('bad', { n: 'one' });
    await kv.put('gone', { n: 2 });
    await kv.delete('gone');
    const request = vi.spyOn(bus.nc, 'request');
    try {
      expect(await kv.get('a b/c')).toEqual({ value: { n: 1 }, revision: rev });
      expect(await kv.get('never')).toBeUndefined();
      expect(await kv.get('bad')).toBeUndefined();
      expect(await kv.withSchema(z.unknown()).get('bad')).toMatchObject({ value: { n: 'one' } });
      expect(await kv.get('gone')).toBeUndefined();
      expect(request).not.toHaveBeenCalled();
    } finally {
      request.mockRestore();
    }
  });

  it('answers with the entries nats.js gives: a value, a deleted or purged key, none', async () => {
    const typed = await bus.kv('dget_same', Value);
    const kv = typed.kv as Bucket;
    expect(kv.direct).toBe(true);
    const gets = new DirectGets(new MuxedReplies(bus.nc));
    await typed.put('k', { n: 1 });
    await typed.put('k', { n: 2 });
    await typed.put('gone', { n: 3 });
    await kv.delete('gone');
    await typed.put('purged', { n: 4 });
    await kv.purge('purged');
    for (const key of ['k', 'gone', 'purged', 'never']) {
      const ours = await gets.last(kv, key);
      expect(entryOf(ours), key).toEqual(entryOf(await kv.get(key)));
    }
    expect(entryOf(await gets.last(kv, 'k'))).toMatchObject({ value: '{"n":2}', operation: 'PUT' });
    expect(entryOf(await gets.last(kv, 'gone'))).toMatchObject({ operation: 'DEL' });
    expect(await gets.last(kv, 'never')).toBeNull();
    // Not a key nats.js allows: refused before anything is sent, as nats.js refuses it.
    expect(() => gets.last(kv, 'a b')).toThrow(/invalid key/);
  });

  it('leaves buckets without direct gets to nats.js', async () => {
    const typed = await bus.kv('dget_nodirect', Value);
    const kv = typed.kv as Bucket;
    kv.direct = false;
    expect(new DirectGets(new MuxedReplies(bus.nc)).last(kv, 'k')).toBeUndefined();
  });

  it("fails as nats.js's get does: nobody answers, no answer in time", async () => {
    const jsm = await jetstreamManager(bus.nc, { timeout: 300 });
    const { codec } = (await bus.kv('dget_codec', Value)).kv as Bucket;
    // Asked where nobody listens (an API prefix no account imports): no responders.
    const nobody = await jetstreamManager(bus.nc, {
      apiPrefix: 'dget.nobody',
      timeout: 300,
      checkAPI: false,
    });
    const none = new Bucket('dget_none', jetstream(bus.nc), nobody);
    none.direct = true;
    none.prefix = '$KV.dget_none';
    none.codec = codec;
    const gets = new DirectGets(new MuxedReplies(bus.nc));
    const noneOurs = await refused(gets.last(none, 'k'));
    const noneTheirs = await refused(none.get('k'));
    expect(shape(noneOurs)).toEqual(shape(noneTheirs));
    expect(shape(noneOurs)).toEqual({ names: ['RequestError', 'NoResponders'], retryable: true });

    // Someone listens but never answers (a stream that is not there: JetStream says nothing).
    const silent = new Bucket('dget_silent', jetstream(bus.nc), jsm);
    silent.direct = true;
    silent.prefix = '$KV.dget_silent';
    silent.codec = codec;
    const sub = bus.nc.subscribe('$JS.API.DIRECT.GET.KV_dget_silent.>', { callback: () => {} });
    await bus.nc.flush();
    const lateOurs = await refused(gets.last(silent, 'k'));
    const lateTheirs = await refused(silent.get('k'));
    sub.unsubscribe();
    expect(shape(lateOurs)).toEqual(shape(lateTheirs));
    expect(shape(lateOurs)).toEqual({ names: ['TimeoutError'], retryable: true });
  });

  it("message gets (leaderReads) answer and fail as nats.js's getMessage does", async () => {
    const typed = await bus.kv('dget_leader', Value);
    const kv = typed.kv as Bucket;
    const gets = new DirectGets(new MuxedReplies(bus.nc));
    await typed.put('k', { n: 1 });
    await typed.put('k', { n: 2 });
    await typed.put('gone', { n: 3 });
    await kv.delete('gone');
    const jsm = await jetstreamManager(bus.nc, { timeout: 300 });
    for (const key of ['k', 'gone', 'never']) {
      const subject = `$KV.dget_leader.${key}`;
      const ours = await gets.lastBySubject(jsm, 'KV_dget_leader', subject);
      const theirs = await jsm.streams.getMessage('KV_dget_leader', { last_by_subj: subject });
      expect(ours && { ...ours, data: Buffer.from(ours.data).toString() }, key).toEqual(
        theirs && {
          seq: theirs.seq,
          data: theirs.string(),
          operation: theirs.header?.get('KV-Operation') || undefined,
        },
      );
    }
    expect(await gets.lastBySubject(jsm, 'KV_dget_leader', '$KV.dget_leader.gone')).toMatchObject({
      operation: 'DEL',
    });
    // A stream that is not there: the server's API error, as nats.js throws it.
    const ours = await refused(gets.lastBySubject(jsm, 'KV_dget_nothere', '$KV.dget_nothere.k'));
    const theirs = await refused(
      jsm.streams.getMessage('KV_dget_nothere', { last_by_subj: '$KV.dget_nothere.k' }),
    );
    expect(shape(ours)).toEqual(shape(theirs));
    expect((ours as { code?: number }).code).toBe((theirs as { code?: number }).code);
    // Nobody answers (an API prefix no account imports): JetStream not enabled, as nats.js says.
    const nobody = await jetstreamManager(bus.nc, {
      apiPrefix: 'dget.nobody',
      timeout: 300,
      checkAPI: false,
    });
    const noneOurs = await refused(gets.lastBySubject(nobody, 'KV_x', '$KV.x.k'));
    const noneTheirs = await refused(
      nobody.streams.getMessage('KV_x', { last_by_subj: '$KV.x.k' }),
    );
    expect(shape(noneOurs)).toEqual(shape(noneTheirs));
    expect(shape(noneOurs).names[0]).toBe('JetStreamNotEnabled');
    expect(shape(ours).names[0]).toBe('StreamNotFoundError');
  });
});
