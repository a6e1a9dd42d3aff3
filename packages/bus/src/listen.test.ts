import { DeadLetter, Envelope, envelope, subjects } from '@computepods/protocol';
import { jsonLines, NatsServer, untilDefined } from '@computepods/testkit';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { Bus } from './bus.js';
import type { Decoded } from './decode.js';
import { listenJson, listenView } from './listen.js';
import { ensureProjectStreams } from './project.js';

const P = 'listentest';
const SUBJECT = `cp.${P}.build.cancel`;

/**
 * Bus.listen over a real nats-server: a core subscription that validates as `consume` does. A
 * bad message is dead-lettered naming its field, logged, and kept from the handler; a handler
 * that throws or rejects is logged, and the subscription goes on.
 */
describe('Bus.listen (a real nats-server)', () => {
  let nats: NatsServer;
  let bus: Bus;
  const log = jsonLines();
  const logs = log.lines;
  const letters: DeadLetter[] = [];

  beforeAll(async () => {
    nats = await NatsServer.start();
    bus = await Bus.connect({
      servers: nats.url,
      service: 'listener',
      project: P,
      logger: pino({ level: 'warn' }, log.stream),
    });
    await ensureProjectStreams(bus, P);
    bus.nc.subscribe(subjects.deadLetter(P, 'listener'), {
      callback: (_e, m) => {
        letters.push(DeadLetter.parse(Envelope.parse(m.json()).body));
      },
    });
    await bus.nc.flush();
  });
  afterAll(async () => {
    await bus?.close();
    await nats?.[Symbol.asyncDispose]();
  });

  const cancel = (buildId: string, project = P) =>
    JSON.stringify(
      envelope('build.cancel', { buildId, reason: 'test' }, { project, source: 'tester' }),
    );

  it('hands valid messages over and dead-letters the rest, naming the field', async () => {
    const got: Array<Decoded<'build.cancel'>> = [];
    const sub = bus.listen(SUBJECT, {
      accept: ['build.cancel'],
      invalidMsg: 'invalid cancel dead-lettered',
      handler: (m) => {
        got.push(m);
      },
    });
    try {
      await bus.nc.flush();
      const bad = [
        'not json',
        JSON.stringify(envelope('build.cancel', { buildId: '' }, { project: P, source: 't' })),
        JSON.stringify(
          envelope('task.control', { taskId: 't', action: 'kill' }, { project: P, source: 't' }),
        ),
        cancel('elsewhere', 'other'),
      ];
      for (const data of bad) bus.nc.publish(SUBJECT, data);
      bus.nc.publish(SUBJECT, cancel('b-1'));
      await untilDefined('the valid message and 4 letters', async () =>
        got.length === 1 && letters.length === 4 ? true : undefined,
      );
      expect(got[0]?.body).toEqual({ buildId: 'b-1', reason: 'test' });
      expect(letters.map((l) => l.data)).toEqual(bad);
      expect(letters.map((l) => l.issues[0]?.path)).toEqual([
        '',
        'body.buildId',
        'type',
        'project',
      ]);
      expect(letters[0]?.issues[0]?.message).toMatch(/^not JSON: /);
      expect(letters.every((l) => l.subject === SUBJECT && l.service === 'listener')).toBe(true);
      const warned = logs.filter((l) => l.msg === 'invalid cancel dead-lettered');
      expect(warned.map((l) => l.reason)).toEqual([
        'malformed JSON',
        'invalid build.cancel body',
        'unexpected message type "task.control"',
        `message for project other on ${P}'s subject`,
      ]);
    } finally {
      sub.unsubscribe();
    }
  });

  it('listenView: one type read through a view of its body, checked as far as the view reads', async () => {
    const view = z.object({ buildId: z.string().min(1) });
    const got: Array<z.infer<typeof view>> = [];
    const sub = listenView(bus, SUBJECT, {
      type: 'build.cancel',
      view,
      handler: (m) => {
        got.push(m.body);
      },
    });
    const before = letters.length;
    try {
      await bus.nc.flush();
      // A reason the view does not read goes unchecked (build.cancel's schema refuses a number).
      const unread = envelope(
        'build.cancel',
        { buildId: 'v-1', reason: 'x' },
        { project: P, source: 't' },
      );
      bus.nc.publish(SUBJECT, JSON.stringify({ ...unread, body: { buildId: 'v-1', reason: 7 } }));
      bus.nc.publish(
        SUBJECT,
        JSON.stringify(envelope('build.cancel', { buildId: '' }, { project: P, source: 't' })),
      );
      bus.nc.publish(
        SUBJECT,
        JSON.stringify(
          envelope('task.control', { taskId: 't', action: 'kill' }, { project: P, source: 't' }),
        ),
      );
      bus.nc.publish(SUBJECT, cancel('v-2', 'other'));
      bus.nc.publish(SUBJECT, cancel('v-3'));
      await untilDefined('two read, three letters', async () =>
        got.length === 2 && letters.length === before + 3 ? true : undefined,
      );
      expect(got).toEqual([{ buildId: 'v-1' }, { buildId: 'v-3' }]);
      expect(letters.slice(before).map((l) => l.issues[0]?.path)).toEqual([
        'body.buildId',
        'type',
        'project',
      ]);
    } finally {
      sub.unsubscribe();
    }
  });

  it('logs a handler that throws or rejects, and goes on', async () => {
    const got: string[] = [];
    const sub = bus.listen(SUBJECT, {
      accept: ['build.cancel'],
      handler: async (m) => {
        got.push(m.body.buildId);
        if (m.body.buildId === 'sync-throw') throw new Error('thrown');
        await Promise.resolve();
        if (m.body.buildId === 'async-reject') throw new Error('rejected');
      },
    });
    const syncSub = bus.listen(SUBJECT, {
      accept: ['build.cancel'],
      handler: (m) => {
        if (m.body.buildId === 'sync-throw') throw new Error('thrown by a plain function');
      },
    });
    try {
      await bus.nc.flush();
      for (const id of ['sync-throw', 'async-reject', 'after']) bus.nc.publish(SUBJECT, cancel(id));
      await untilDefined('every message handled', async () =>
        got.length === 3 ? true : undefined,
      );
      expect(got).toEqual(['sync-throw', 'async-reject', 'after']);
      await untilDefined('three failures logged', async () =>
        logs.filter((l) => l.msg === 'message handler failed').length === 3 ? true : undefined,
      );
    } finally {
      sub.unsubscribe();
      syncSub.unsubscribe();
    }
  });

  it('answers an invalid request naming the field (answerInvalid), and still answers valid ones', async () => {
    // A subject no stream stores (a stream would answer a request with its ack).
    const subject = subjects.taskControl(P);
    const sub = bus.listen(subject, {
      accept: ['build.cancel'],
      answerInvalid: true,
      handler: (m, raw) => {
        raw.respond(JSON.stringify({ ok: true, result: m.body.buildId }));
      },
    });
    const ask = async (data: string) =>
      JSON.parse(
        new TextDecoder().decode((await bus.nc.request(subject, data, { timeout: 5_000 })).data),
      );
    try {
      await bus.nc.flush();
      const before = letters.length;
      expect(await ask('not json')).toEqual({
        ok: false,
        error: {
          code: 'CP_MESSAGE_INVALID',
          message: expect.stringMatching(/^malformed JSON: \(top level\): not JSON: /),
          field: '',
        },
      });
      const wrong = await ask(
        JSON.stringify(envelope('build.cancel', { buildId: '' }, { project: P, source: 't' })),
      );
      expect(wrong.error).toMatchObject({ code: 'CP_MESSAGE_INVALID', field: 'body.buildId' });
      expect(await ask(cancel('b-2'))).toEqual({ ok: true, result: 'b-2' });
      await untilDefined('both dead-lettered', async () =>
        letters.length === before + 2 ? true : undefined,
      );
    } finally {
      sub.unsubscribe();
    }
  });

  it('listenJson: plain JSON of a schema, one of a queue group, invalid ones answered', async () => {
    const Req = z.object({ n: z.number().int() });
    const subject = `cp.${P}.plain`;
    const got: number[] = [];
    const subs = [1, 2].map(() =>
      listenJson(bus, subject, {
        schema: Req,
        queue: 'q',
        answerInvalid: true,
        handler: (req, raw) => {
          got.push(req.n);
          raw.respond(JSON.stringify({ ok: true, n: req.n }));
        },
      }),
    );
    const ask = async (data: string) =>
      JSON.parse(
        new TextDecoder().decode((await bus.nc.request(subject, data, { timeout: 5_000 })).data),
      );
    try {
      await bus.nc.flush();
      expect(await ask('{"n":')).toMatchObject({
        ok: false,
        error: { code: 'CP_MESSAGE_INVALID', field: '' },
      });
      const wrong = await ask('{"n":"1"}');
      expect(wrong.error).toMatchObject({ code: 'CP_MESSAGE_INVALID', field: 'n' });
      expect(wrong.error.message).toMatch(/^invalid request: n: /);
      for (let n = 0; n < 10; n++)
        expect(await ask(JSON.stringify({ n }))).toEqual({ ok: true, n });
      // A queue group: each request handled once, not by both subscribers.
      expect(got).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    } finally {
      for (const s of subs) s.unsubscribe();
    }
  });
});
