import {
  type DeadLetter,
  Envelope,
  envelope,
  messageTypes,
  streams,
  subjects,
} from '@computepods/protocol';
import { defined, NatsServer } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { Bus } from './bus.js';
import { NatsUnavailableError, RemoteError } from './errors.js';
import { quietLogger } from './logger.js';
import { ensureProjectStreams } from './project.js';

const P = 'bustest';
const sha = 'b'.repeat(64);
const fileBody = (path: string) => ({
  pod: 'pod-a',
  events: [{ kind: 'changed' as const, path, size: 3, mtimeNs: '1', sha256: sha }],
});

async function caught(p: Promise<unknown>): Promise<Error & { code?: string; field?: string }> {
  return p.then(
    () => {
      throw new Error('expected a failure');
    },
    (e: unknown) => e as Error & { code?: string; field?: string },
  );
}

async function until<T>(fn: () => T | undefined, timeoutMs = 10_000): Promise<T> {
  const end = performance.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v !== undefined) return v;
    if (performance.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('Bus over a real nats-server', () => {
  let nats: NatsServer;
  let bus: Bus;
  const logger = quietLogger('bus-test');

  beforeAll(async () => {
    nats = await NatsServer.start();
    bus = await Bus.connect({ servers: nats.url, service: 'tester', project: P, logger });
    await ensureProjectStreams(bus, P);
  });
  afterAll(async () => {
    await bus?.close();
    await nats?.[Symbol.asyncDispose]();
  });

  it('creates project streams idempotently', async () => {
    await ensureProjectStreams(bus, P);
    const info = await bus.jsm.streams.info(streams.builds(P));
    expect(info.config.retention).toBe('workqueue');
  });

  it('publishes, consumes, dedupes by msgId, and dead-letters bad messages without stopping', async () => {
    const seen: string[] = [];
    const consumer = await bus.consume({
      stream: streams.files(P),
      durable: 'files-test',
      accept: ['files.changed'],
      handler: async (msg) => {
        seen.push(defined(msg.body.events[0], 'an event').path);
      },
    });
    const dlq: z.infer<typeof DeadLetter>[] = [];
    const sub = bus.nc.subscribe(subjects.deadLetter(P, 'tester'), {
      callback: (_e, m) => {
        dlq.push(Envelope.parse(m.json()).body as z.infer<typeof DeadLetter>);
      },
    });
    const subject = subjects.filesChanged(P, 'p1');
    await bus.publish('files.changed', subject, fileBody('a.txt'), { msgId: 'one' });
    const dup = await bus.publish('files.changed', subject, fileBody('a.txt'), { msgId: 'one' });
    expect(dup.duplicate).toBe(true);
    await bus.js.publish(subject, '{not json');
    await bus.js.publish(
      subject,
      JSON.stringify(
        envelope('files.changed', fileBody('../etc/passwd'), { project: P, source: 'evil' }),
      ),
    );
    await bus.js.publish(
      subject,
      JSON.stringify(
        envelope('task.control', { taskId: 'x', action: 'kill' }, { project: P, source: 'x' }),
      ),
    );
    await bus.js.publish(
      subject,
      JSON.stringify(
        envelope('files.changed', fileBody('x.txt'), { project: 'other', source: 'x' }),
      ),
    );
    await bus.publish('files.changed', subject, fileBody('b.txt'));
    await until(() => (seen.length === 2 && dlq.length === 4 ? true : undefined)).catch((e) => {
      throw new Error(
        `${e.message}: seen=${JSON.stringify(seen)} dlq=${JSON.stringify(dlq.map((d) => d.reason))}`,
      );
    });
    expect(seen).toEqual(['a.txt', 'b.txt']);
    expect(dlq.map((d) => d.reason)).toEqual([
      expect.stringMatching(/malformed JSON/),
      'invalid files.changed body',
      'unexpected message type "task.control"',
      expect.stringMatching(/project other/),
    ]);
    expect(defined(defined(dlq[1], 'a dead letter').issues[0], 'an issue').path).toBe(
      'body.events.0.path',
    );
    // dead letters are kept in the project's DLQ stream for inspection
    const dlqInfo = await bus.jsm.streams.info(streams.deadLetters(P));
    expect(dlqInfo.state.messages).toBeGreaterThanOrEqual(4);
    sub.unsubscribe();
    await consumer.stop();
  });

  it('redelivers after a retryable failure and dead-letters after max deliver', async () => {
    let calls = 0;
    const done: string[] = [];
    const dlq: z.infer<typeof DeadLetter>[] = [];
    const sub = bus.nc.subscribe(subjects.deadLetter(P, 'tester'), {
      callback: (_e, m) => {
        dlq.push(Envelope.parse(m.json()).body as z.infer<typeof DeadLetter>);
      },
    });
    const consumer = await bus.consume({
      stream: streams.files(P),
      durable: 'retry-test',
      accept: ['files.changed'],
      maxDeliver: 3,
      handler: async (msg) => {
        const path = defined(msg.body.events[0], 'an event').path;
        if (path === 'flaky.txt' && ++calls < 2) throw new Error('transient');
        if (path === 'never.txt') throw new Error('always fails');
        done.push(path);
      },
    });
    await bus.publish('files.changed', subjects.filesChanged(P, 'p1'), fileBody('flaky.txt'));
    await bus.publish('files.changed', subjects.filesChanged(P, 'p1'), fileBody('never.txt'));
    await until(() => (done.includes('flaky.txt') ? true : undefined), 20_000);
    const letter = await until(() => dlq.find((d) => d.data.includes('never.txt')), 20_000);
    expect(letter).toMatchObject({ reason: 'handler failed: always fails', deliveries: 3 });
    expect(calls).toBe(2);
    sub.unsubscribe();
    await consumer.stop();
  });

  it('acknowledges with a plain ack when asked to (confirmAck: false)', async () => {
    const seen: string[] = [];
    const consumer = await bus.consume({
      stream: streams.files(P),
      durable: 'plain-ack-test',
      accept: ['files.changed'],
      confirmAck: false,
      handler: async (msg) => {
        seen.push(defined(msg.body.events[0], 'an event').path);
      },
    });
    await bus.publish('files.changed', subjects.filesChanged(P, 'p1'), fileBody('plain.txt'));
    await until(() => (seen.includes('plain.txt') ? true : undefined));
    // Every delivery is acknowledged at the server: nothing pending, the ack floor at the last.
    const acked = async () => {
      const i = await bus.jsm.consumers.info(streams.files(P), 'plain-ack-test');
      return i.num_pending === 0 && i.num_ack_pending === 0
        ? i.ack_floor.consumer_seq === i.delivered.consumer_seq
        : false;
    };
    const end = performance.now() + 10_000;
    while (!(await acked())) {
      if (performance.now() > end) throw new Error('the deliveries were not acknowledged');
      await new Promise((r) => setTimeout(r, 20));
    }
    await consumer.stop();
  });

  it('pulls again once a quarter of what it asked for is still to come', async () => {
    // concurrency 4: 8 messages asked for at a time, again once 2 are still to come (6 more);
    // nats.js's default pulled again once 6 were still to come, every 2 messages.
    const subject = subjects.filesChanged(P, 'pulls');
    for (let i = 0; i < 24; i++) await bus.publish('files.changed', subject, fileBody(`p${i}.txt`));
    let pulls = 0;
    const sub = bus.nc.subscribe(`$JS.API.CONSUMER.MSG.NEXT.${streams.files(P)}.pull-test`, {
      callback: () => {
        pulls++;
      },
    });
    const seen: string[] = [];
    const consumer = await bus.consume({
      stream: streams.files(P),
      durable: 'pull-test',
      filterSubject: subject,
      accept: ['files.changed'],
      concurrency: 4,
      handler: async (msg) => {
        seen.push(defined(msg.body.events[0], 'an event').path);
      },
    });
    await until(() => (seen.length >= 24 ? true : undefined));
    await bus.nc.flush();
    await consumer.stop();
    sub.unsubscribe();
    expect(new Set(seen).size).toBe(24);
    // The first pull and one every 6 messages (one more if a pull expired meanwhile: 5 s).
    expect(pulls).toBeGreaterThanOrEqual(4);
    expect(pulls).toBeLessThanOrEqual(6);
  });

  it('publishes a body its caller validated with no parse of its own, deduped by msgId', async () => {
    const schema = messageTypes['files.changed'];
    const parse = vi.spyOn(schema, 'safeParse');
    try {
      const subject = subjects.filesChanged(P, 'pv');
      const body = schema.parse(fileBody('v.txt'));
      parse.mockClear();
      const first = await bus.publishValidated('files.changed', subject, body, { msgId: 'pv-1' });
      const again = await bus.publishValidated('files.changed', subject, body, { msgId: 'pv-1' });
      expect(parse).not.toHaveBeenCalled();
      expect([first.duplicate, again.duplicate]).toEqual([false, true]);
      const stored = await bus.jsm.streams.getMessage(streams.files(P), { seq: first.seq });
      const env = Envelope.parse(defined(stored, 'the stored message').json());
      expect([env.type, env.project, env.source, env.body]).toEqual([
        'files.changed',
        P,
        'tester',
        body,
      ]);
    } finally {
      parse.mockRestore();
    }
  });

  it('refuses to send an invalid body', () => {
    expect(() => bus.encode('files.changed', { pod: 'p', events: [] })).toThrow(/body.events/);
  });

  it('serves typed requests and names the bad field', async () => {
    bus.serve('echo', z.object({ n: z.number() }), async (b) => ({ twice: b.n * 2 }));
    const r = await bus.request('echo', { n: 21 }, z.object({ twice: z.number() }));
    expect(r.twice).toBe(42);
    const err = await caught(bus.request('echo', { n: 'x' }, z.unknown()));
    expect(err).toBeInstanceOf(RemoteError);
    expect(err.code).toBe('CP_MESSAGE_INVALID');
    expect(err.field).toBe('n');
    const none = await caught(bus.request('nobody', {}, z.unknown(), { timeoutMs: 300 }));
    expect(none.code).toBe('CP_UNAVAILABLE');
  });

  it('refuses an answer that is not one, naming the field', async () => {
    const answers = [
      'not json',
      '{"no": "envelope"}',
      JSON.stringify(envelope('api.reply', { ok: 'yes' }, { project: P, source: 'rogue' })),
      JSON.stringify(envelope('api.reply', { ok: false }, { project: P, source: 'rogue' })),
    ];
    let next = 0;
    const rogue = bus.nc.subscribe(`cp.${P}.api.rogue`, {
      callback: (_e, m) => {
        m.respond(answers[next++] ?? '');
      },
    });
    try {
      await bus.nc.flush();
      const got = [];
      for (const _ of answers) {
        const err = await caught(bus.request('rogue', {}, z.unknown()));
        got.push([err.constructor.name, err.code, err.message.split(': ').slice(0, 2).join(': ')]);
      }
      expect(got).toEqual([
        ['MessageInvalidError', 'CP_MESSAGE_INVALID', 'malformed rogue reply: (top level)'],
        ['MessageInvalidError', 'CP_MESSAGE_INVALID', 'invalid rogue reply envelope: v'],
        ['MessageInvalidError', 'CP_MESSAGE_INVALID', 'invalid rogue reply: body.ok'],
        ['MessageInvalidError', 'CP_MESSAGE_INVALID', 'invalid rogue reply: body.error'],
      ]);
    } finally {
      rogue.unsubscribe();
    }
  });

  it('answers $SRV.PING, INFO and STATS', async () => {
    const ping = await bus.nc.request('$SRV.PING.tester', '', { timeout: 2000 });
    expect(ping.json()).toMatchObject({ type: 'io.nats.micro.v1.ping_response', name: 'tester' });
    const info = await bus.nc.request('$SRV.INFO', '', { timeout: 2000 });
    expect(info.json<{ endpoints: unknown[] }>().endpoints.length).toBeGreaterThan(0);
    const stats = await bus.nc.request('$SRV.STATS.tester', '', { timeout: 2000 });
    const s = stats.json<{ endpoints: { name: string; num_requests: number }[] }>();
    expect(s.endpoints.find((e) => e.name === 'files-test')?.num_requests).toBeGreaterThanOrEqual(
      6,
    );
  });

  it('stores validated values in KV and skips invalid stored ones', async () => {
    const kv = await bus.kv('cp_bustest_kvtest', z.object({ n: z.number() }));
    const rev = await kv.put('dir/a b.txt', { n: 1 });
    await expect(kv.update('dir/a b.txt', { n: 2 }, rev)).resolves.toBeGreaterThan(rev);
    await expect(kv.update('dir/a b.txt', { n: 3 }, rev)).rejects.toThrow();
    expect((await kv.get('dir/a b.txt'))?.value).toEqual({ n: 2 });
    await kv.kv.put('junk', 'not json');
    expect(await kv.get('junk')).toBeUndefined();
    const all = await kv.entries();
    expect([...all.keys()]).toEqual(['dir/a b.txt']);
    expect(() => kv.put('x', { n: 'no' } as never)).toThrow(/n/);
  });

  it('makes a request error when it fails, not when sent, with asyncTraces: false', async () => {
    const lean = await Bus.connect({
      servers: nats.url,
      service: 'lean',
      project: P,
      logger,
      asyncTraces: false,
    });
    try {
      // Named so the stack shows whether the error was made when the request was sent.
      async function askNobodyFromHere(b: Bus): Promise<Error> {
        return b.nc.request('nobody.answers.this', 'x', { timeout: 5_000 }).then(
          () => new Error('expected no responders'),
          (e: unknown) => e as Error,
        );
      }
      const traced = await askNobodyFromHere(bus);
      const untraced = await askNobodyFromHere(lean);
      expect(traced.message).toMatch(/no responders/i);
      expect(untraced.message).toMatch(/no responders/i);
      expect(traced.stack).toContain('askNobodyFromHere');
      expect(untraced.stack).not.toContain('askNobodyFromHere');
    } finally {
      await lean.close();
    }
  });

  it('fails with a clear error when NATS is unreachable', async () => {
    const err = await caught(
      Bus.connect({
        servers: 'nats://127.0.0.1:1',
        service: 'x',
        project: P,
        logger,
        giveUpAfterMs: 300,
      }),
    );
    expect(err).toBeInstanceOf(NatsUnavailableError);
    expect(err.message).toMatch(/NATS_URL/);
  });
});

describe('Bus when NATS comes and goes', () => {
  it('waits with backoff until NATS is up, then keeps working across a server restart', async () => {
    await using nats = await NatsServer.start();
    await nats.stop();
    const lines: string[] = [];
    const logger = quietLogger('late');
    const warn = logger.warn.bind(logger);
    logger.warn = ((obj: unknown, msg?: string) => {
      lines.push(msg ?? String(obj));
      return warn(obj as object, msg);
    }) as typeof logger.warn;
    const pending = Bus.connect({ servers: nats.url, service: 'late', project: P, logger });
    // Its first attempt fails and says so; no fixed wait (a loaded machine took longer than
    // 700 ms to get there: fresh-clone CI run 116).
    await until(() => lines[0]);
    expect(lines[0]).toMatch(/cannot reach NATS at .*NATS_URL/);
    await nats.start();
    const bus = await pending;
    await ensureProjectStreams(bus, P);
    await nats.stop();
    await nats.start();
    const ack = await bus.publish(
      'files.changed',
      subjects.filesChanged(P, 'p1'),
      fileBody('after-restart.txt'),
    );
    expect(ack.seq).toBeGreaterThan(0);
    await bus.close();
  });
});
