import { buckets, streams } from '@computepods/protocol';
import { NatsServer } from '@computepods/testkit';
import { Kvm } from '@nats-io/kv';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { Bus } from './bus.js';
import {
  EVENT_MAX_AGE_MS,
  RECORD_MAX_AGE_MS,
  retentionFromEnv,
  TASK_LOG_MAX_AGE_MS,
} from './config.js';
import { quietLogger } from './logger.js';
import { ensureProjectStreams, projectBucketMaxAgeMs } from './project.js';
import { ensureKv } from './setup.js';

// Retention: task records and build results (KV) expire after CP_RECORD_MAX_AGE_S, file changes
// and build events after CP_EVENT_MAX_AGE_S; set at creation and changed on an existing project
// (an upgrade), against a real nats-server. Expiry itself is the server's: one test watches a
// value go once its age has passed (no bound on how fast is asserted).
const P = 'retain';
const NS = 1_000_000;
const logger = quietLogger('retention-test');

describe('retention settings from the environment', () => {
  it('defaults: records 14 days, events 7 days, task logs a day', () => {
    expect(retentionFromEnv({})).toEqual({
      recordMaxAgeMs: RECORD_MAX_AGE_MS,
      eventMaxAgeMs: EVENT_MAX_AGE_MS,
      taskLogMaxAgeMs: TASK_LOG_MAX_AGE_MS,
    });
    expect(RECORD_MAX_AGE_MS).toBe(14 * 24 * 3600_000);
    expect(retentionFromEnv({ CP_RECORD_MAX_AGE_S: '', CP_EVENT_MAX_AGE_S: ' ' })).toEqual(
      retentionFromEnv({}),
    );
  });

  it('reads seconds', () => {
    expect(
      retentionFromEnv({
        CP_RECORD_MAX_AGE_S: '3600',
        CP_EVENT_MAX_AGE_S: '300',
        CP_TASK_LOG_MAX_AGE_S: '0.5',
      }),
    ).toEqual({ recordMaxAgeMs: 3_600_000, eventMaxAgeMs: 300_000, taskLogMaxAgeMs: 500 });
  });

  it('refuses what is not a positive number, and records kept less than 15 minutes', () => {
    for (const [name, value] of [
      ['CP_RECORD_MAX_AGE_S', 'a week'],
      ['CP_RECORD_MAX_AGE_S', '899'],
      ['CP_EVENT_MAX_AGE_S', '0'],
      ['CP_EVENT_MAX_AGE_S', '-5'],
      ['CP_TASK_LOG_MAX_AGE_S', 'Infinity'],
    ] as const)
      expect(() => retentionFromEnv({ [name]: value }), `${name}=${value}`).toThrow(name);
    expect(() => retentionFromEnv({ CP_RECORD_MAX_AGE_S: '899' })).toThrow('at least 900');
  });

  it('gives a max age to the project tasks and builds buckets only', () => {
    const env = { CP_RECORD_MAX_AGE_S: '7200' };
    expect(projectBucketMaxAgeMs(P, buckets.tasks(P), env)).toBe(7_200_000);
    expect(projectBucketMaxAgeMs(P, buckets.builds(P), env)).toBe(7_200_000);
    for (const b of [buckets.artefacts(P), buckets.rules(P), buckets.config(P), buckets.tasks('x')])
      expect(projectBucketMaxAgeMs(P, b, env), b).toBeUndefined();
  });
});

describe('retention over a real nats-server', () => {
  let nats: NatsServer;
  let bus: Bus;
  const saved = { ...process.env };

  beforeAll(async () => {
    nats = await NatsServer.start();
    bus = await Bus.connect({ servers: nats.url, service: 'tester', project: P, logger });
  });
  afterEach(() => {
    for (const k of ['CP_RECORD_MAX_AGE_S', 'CP_EVENT_MAX_AGE_S', 'CP_TASK_LOG_MAX_AGE_S'])
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
  });
  afterAll(async () => {
    await bus?.close();
    await nats?.[Symbol.asyncDispose]();
  });

  const maxAge = async (stream: string) => (await bus.jsm.streams.info(stream)).config.max_age;

  it('creates the tasks and builds buckets with the records max age, other buckets without', async () => {
    await bus.kv(buckets.tasks(P), z.unknown(), { history: 5 });
    await bus.kv(buckets.builds(P), z.unknown());
    await bus.kv(buckets.artefacts(P), z.unknown());
    expect(await maxAge(`KV_${buckets.tasks(P)}`)).toBe(RECORD_MAX_AGE_MS * NS);
    expect(await maxAge(`KV_${buckets.builds(P)}`)).toBe(RECORD_MAX_AGE_MS * NS);
    expect(await maxAge(`KV_${buckets.artefacts(P)}`)).toBe(0);
    // History is the bucket's own: not changed by the max age.
    const tasks = await bus.jsm.streams.info(`KV_${buckets.tasks(P)}`);
    expect(tasks.config.max_msgs_per_subject).toBe(5);
  });

  it('upgrade: buckets made without a max age get it from the stream setup, keeping values and history', async () => {
    const p = 'olden';
    const old = await Bus.connect({ servers: nats.url, service: 'tester', project: p, logger });
    try {
      // As an earlier version made them: no max age.
      const kvm = new Kvm(old.nc);
      const tasks = await kvm.create(buckets.tasks(p), { history: 5 });
      const builds = await kvm.create(buckets.builds(p), { history: 1 });
      await tasks.put('b-1', '{"state":"finished"}');
      await builds.put('1', '{"status":"succeeded"}');
      expect(await maxAge(`KV_${buckets.tasks(p)}`)).toBe(0);

      // Opening an existing bucket (every service and cpctrl does) changes nothing...
      process.env.CP_RECORD_MAX_AGE_S = '86400';
      const reopened = await old.kv(buckets.tasks(p), z.unknown(), { history: 5 });
      expect(await maxAge(`KV_${buckets.tasks(p)}`)).toBe(0);
      // ...the project's setup (provisioning, a service's start) does.
      await ensureProjectStreams(old, p);
      const info = await old.jsm.streams.info(`KV_${buckets.tasks(p)}`);
      expect(info.config.max_age).toBe(86_400_000 * NS);
      expect(info.config.max_msgs_per_subject).toBe(5);
      expect(await maxAge(`KV_${buckets.builds(p)}`)).toBe(86_400_000 * NS);
      // Younger than the new age: still there.
      expect((await reopened.get('b-1'))?.value).toEqual({ state: 'finished' });
      expect((await builds.get('1'))?.string()).toBe('{"status":"succeeded"}');

      // Set again to something else: changed again; an opener with another setting leaves it.
      process.env.CP_RECORD_MAX_AGE_S = '3600';
      await ensureProjectStreams(old, p);
      expect(await maxAge(`KV_${buckets.tasks(p)}`)).toBe(3_600_000 * NS);
      delete process.env.CP_RECORD_MAX_AGE_S;
      await old.kv(buckets.tasks(p), z.unknown(), { history: 5 });
      await ensureKv(old.nc, buckets.tasks(p), { history: 5 });
      expect(await maxAge(`KV_${buckets.tasks(p)}`)).toBe(3_600_000 * NS);
      // An explicit option wins over the environment.
      await ensureProjectStreams(old, p, { recordMaxAgeMs: 7_200_000 });
      expect(await maxAge(`KV_${buckets.builds(p)}`)).toBe(7_200_000 * NS);
    } finally {
      await old.close();
    }
  });

  it('a value expires once its max age has passed since it was last written', async () => {
    // ensureKv directly: the environment's floor (15 minutes) is for the project's buckets.
    const kv = await ensureKv(bus.nc, 'retain_short', { maxAgeMs: 1_000 });
    await kv.put('k', 'v');
    expect((await kv.get('k'))?.string()).toBe('v');
    const deadline = performance.now() + 60_000;
    while ((await kv.get('k')) !== null && performance.now() < deadline)
      await new Promise((r) => setTimeout(r, 250));
    expect(await kv.get('k')).toBeNull();
    // The bucket itself stays usable: a new value is kept.
    await kv.put('k', 'again');
    expect((await kv.get('k'))?.string()).toBe('again');
  });

  it('file changes and build events: the events max age at creation and on upgrade', async () => {
    const p = 'evts';
    const b = await Bus.connect({ servers: nats.url, service: 'tester', project: p, logger });
    try {
      // Before any bucket exists (provisioning's order): streams made, no bucket made here.
      await ensureProjectStreams(b, p);
      await expect(b.jsm.streams.info(`KV_${buckets.tasks(p)}`)).rejects.toThrow();
      expect(await maxAge(streams.events(p))).toBe(EVENT_MAX_AGE_MS * NS);
      expect(await maxAge(streams.files(p))).toBe(EVENT_MAX_AGE_MS * NS);
      process.env.CP_EVENT_MAX_AGE_S = '600';
      process.env.CP_TASK_LOG_MAX_AGE_S = '300';
      await ensureProjectStreams(b, p);
      expect(await maxAge(streams.events(p))).toBe(600_000 * NS);
      expect(await maxAge(streams.files(p))).toBe(600_000 * NS);
      expect(await maxAge(streams.taskLogs(p))).toBe(300_000 * NS);
      // The work queues keep no age: a queued request waits for its chef however long.
      expect(await maxAge(streams.builds(p))).toBe(0);
      expect(await maxAge(streams.tasks(p))).toBe(0);
      // An explicit option wins over the environment.
      await ensureProjectStreams(b, p, { eventMaxAgeMs: 900_000 });
      expect(await maxAge(streams.events(p))).toBe(900_000 * NS);
    } finally {
      await b.close();
    }
  });
});
