import {
  Bus,
  ensureProjectStreams,
  quietLogger,
  readTaskLog,
  type TaskLogEvent,
} from '@computepods/bus';
import type { LogRead } from '@computepods/executors';
import { streams, subjects, type TaskLogStream, type TaskRecord } from '@computepods/protocol';
import { defined, NatsServer, until } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TaskLogPublisher, type TaskLogSettings } from './task-log-publisher.js';

const P = 'logpub';

/**
 * The publisher against a real nats-server, its files played by memory buffers (a file that
 * grows, shrinks, or is not there yet), read back with readTaskLog as any reader would.
 */
describe('task log publisher over a real nats-server', () => {
  let nats: NatsServer;
  let bus: Bus;
  const logger = quietLogger('logpub-test');
  const files = new Map<string, Buffer>();
  const publishers: TaskLogPublisher[] = [];

  const read = async (rec: TaskRecord, s: TaskLogStream, offset: number, max: number) => {
    const f = files.get(`${rec.task.taskId}.${s}`);
    if (!f) return undefined;
    return { data: f.subarray(offset, offset + max), size: f.length } satisfies LogRead;
  };
  const append = (key: string, text: string) =>
    files.set(key, Buffer.concat([files.get(key) ?? Buffer.alloc(0), Buffer.from(text)]));

  function publisher(settings: Partial<TaskLogSettings> = {}): TaskLogPublisher {
    const p = new TaskLogPublisher({
      bus,
      queue: 'q1',
      settings: { maxBytes: 1 << 20, chunkBytes: 1024, pollMs: 20, ...settings },
      read,
    });
    publishers.push(p);
    return p;
  }

  function rec(taskId: string, state: TaskRecord['state'], exitCode?: number): TaskRecord {
    return {
      task: { taskId, resource: 'q1', command: 'x', cwd: '/', env: {}, gpu: false },
      state,
      stdoutPath: `/jobs/${taskId}/stdout`,
      stderrPath: `/jobs/${taskId}/stderr`,
      ...(exitCode !== undefined ? { exitCode } : {}),
      history: [],
      updated: new Date().toISOString(),
    };
  }

  async function readAll(taskId: string, stream: TaskLogStream, from = 0, follow = false) {
    const events: TaskLogEvent[] = [];
    await readTaskLog(bus, {
      queue: 'q1',
      taskId,
      streams: [stream],
      from,
      follow,
      onEvent: (e) => {
        events.push(e);
      },
    });
    return events;
  }
  const text = (events: TaskLogEvent[]) =>
    Buffer.concat(events.flatMap((e) => (e.kind === 'data' ? [e.data] : []))).toString();

  beforeAll(async () => {
    nats = await NatsServer.start();
    bus = await Bus.connect({ servers: nats.url, service: 'runner', project: P, logger });
    await ensureProjectStreams(bus, P);
  });
  afterAll(async () => {
    await Promise.allSettled(publishers.map((p) => p.close()));
    await bus?.close();
    await nats?.[Symbol.asyncDispose]();
  });

  it('publishes a growing file in contiguous pieces, then an end with the task state', async () => {
    const pub = publisher();
    append('t1.stdout', 'hello\n');
    pub.onState(rec('t1', 'running'));
    const seen: TaskLogEvent[] = [];
    const follow = readTaskLog(bus, {
      queue: 'q1',
      taskId: 't1',
      streams: ['stdout'],
      follow: true,
      onEvent: (e) => {
        seen.push(e);
      },
    });
    await until(async () => text(seen) === 'hello\n', 'the first line, live');
    append('t1.stdout', `${'x'.repeat(3000)}\n`);
    await until(async () => text(seen).length === 3007, 'the rest, live, in pieces');
    pub.onState(rec('t1', 'failed', 3));
    await follow;
    const last = seen.at(-1);
    expect(last).toMatchObject({ kind: 'end', state: 'failed', exitCode: 3, offset: 3007 });
    const data = seen.filter((e) => e.kind === 'data');
    // Pieces at most chunkBytes, each starting where the previous ended.
    let at = 0;
    for (const d of data) {
      expect(d.offset).toBe(at);
      expect(d.data.length).toBeLessThanOrEqual(1024);
      at += d.data.length;
    }
    // stderr never written: its log is just an end (and, read as a snapshot, says so).
    expect(await readAll('t1', 'stderr')).toEqual([
      { kind: 'end', stream: 'stderr', offset: 0, state: 'failed', exitCode: 3, droppedBytes: 0 },
      { kind: 'sofar', stream: 'stderr', offset: 0 },
    ]);
    // Resumable from any offset, and from beyond the end.
    expect(text(await readAll('t1', 'stdout', 4))).toBe(`o\n${'x'.repeat(3000)}\n`);
    expect(text(await readAll('t1', 'stdout', 3007))).toBe('');
  });

  it('caps a log with a truncated marker and counts what was not published', async () => {
    const pub = publisher({ maxBytes: 2500 });
    append('t2.stdout', 'y'.repeat(4000));
    pub.onState(rec('t2', 'running'));
    pub.onState(rec('t2', 'finished', 0));
    await until(
      async () => (await readAll('t2', 'stdout')).some((e) => e.kind === 'end'),
      'the end',
    );
    const events = await readAll('t2', 'stdout');
    expect(text(events)).toBe('y'.repeat(2500));
    expect(events.filter((e) => e.kind !== 'data')).toEqual([
      { kind: 'truncated', stream: 'stdout', offset: 2500, limitBytes: 2500 },
      {
        kind: 'end',
        stream: 'stdout',
        offset: 2500,
        state: 'finished',
        exitCode: 0,
        droppedBytes: 1500,
      },
      { kind: 'sofar', stream: 'stdout', offset: 2500 },
    ]);
  });

  it('marks a file that started over as a new attempt, offsets going on', async () => {
    const pub = publisher();
    append('t3.stdout', 'first run\n');
    pub.onState(rec('t3', 'running'));
    await until(async () => text(await readAll('t3', 'stdout')) === 'first run\n', 'attempt 1');
    files.set('t3.stdout', Buffer.from('again\n'));
    await until(
      async () => text(await readAll('t3', 'stdout')) === 'first run\nagain\n',
      'the restart',
    );
    pub.onState(rec('t3', 'finished', 0));
    await until(
      async () => (await readAll('t3', 'stdout')).some((e) => e.kind === 'end'),
      'the end',
    );
    const events = await readAll('t3', 'stdout');
    expect(events.map((e) => [e.kind, e.offset, e.kind === 'data' ? e.attempt : '-'])).toEqual([
      ['data', 0, 1],
      ['restart', 10, '-'],
      ['data', 10, 2],
      ['end', 16, '-'],
      ['sofar', 16, '-'],
    ]);
    expect(events[1]).toMatchObject({ attempt: 2 });
  });

  it("keeps pieces within a small project's stream (a small quota's quarter)", async () => {
    const tiny = await Bus.connect({
      servers: nats.url,
      service: 'runner',
      project: 'tiny',
      logger,
    });
    try {
      await ensureProjectStreams(tiny, 'tiny', { taskLogMaxBytes: 64 * 1024 });
      const pub = new TaskLogPublisher({
        bus: tiny,
        queue: 'q1',
        settings: { maxBytes: 1 << 20, chunkBytes: 64 * 1024, pollMs: 20 },
        read,
      });
      publishers.push(pub);
      append('t5.stdout', 'z'.repeat(10_000));
      pub.onState(rec('t5', 'running'));
      pub.onState(rec('t5', 'finished', 0));
      const events: TaskLogEvent[] = [];
      await readTaskLog(tiny, {
        queue: 'q1',
        taskId: 't5',
        streams: ['stdout'],
        follow: true,
        onEvent: (e) => {
          events.push(e);
        },
      });
      expect(text(events)).toBe('z'.repeat(10_000));
      const pieces = events.filter((e) => e.kind === 'data');
      expect(pieces.length).toBeGreaterThan(1);
      for (const p of pieces) expect(p.data.length).toBeLessThanOrEqual((64 * 1024) / 16);
    } finally {
      await tiny.close();
    }
  });

  it('does not ask the stream where the log of a task it just created stands', async () => {
    // Every look-up of a subject's last piece on the task-log stream (the subject is appended
    // to the request's), and every piece published, as a second connection sees them.
    const watcher = await Bus.connect({ servers: nats.url, service: 'watch', project: P, logger });
    const asked: string[] = [];
    const ends: string[] = [];
    watcher.nc.subscribe(`$JS.API.DIRECT.GET.${streams.taskLogs(P)}.>`, {
      callback: (_e, m) => {
        asked.push(m.subject);
      },
    });
    watcher.nc.subscribe(subjects.taskLog(P, 'q1', 't6', 'stdout').replace(/stdout$/, '*'), {
      callback: (_e, m) => {
        if ((m.json() as { body: { mark?: string } }).body.mark === 'end') ends.push(m.subject);
      },
    });
    await watcher.nc.flush();
    try {
      const pub = publisher();
      append('t6.stdout', 'fresh\n');
      pub.onState({ ...rec('t6', 'created'), history: [{ state: 'created', time: 'now' }] });
      pub.onState(rec('t6', 'running'));
      pub.onState(rec('t6', 'finished', 0));
      await until(async () => ends.length === 2, 'both ends');
      await watcher.nc.flush();
      expect(asked).toEqual([]);
      const events = await readAll('t6', 'stdout');
      expect(events.map((e) => [e.kind, e.offset])).toEqual([
        ['data', 0],
        ['end', 6],
        ['sofar', 6],
      ]);
      expect(text(events)).toBe('fresh\n');
    } finally {
      await watcher.close();
    }
  });

  it('takes up a log already on the stream for a task id it just created (a reused id)', async () => {
    const old = publisher();
    append('t7.stdout', 'old run\n');
    old.onState(rec('t7', 'running'));
    await until(async () => text(await readAll('t7', 'stdout')) === 'old run\n', 'the old log');
    await old.close();
    files.set('t7.stdout', Buffer.from('new\n'));
    const pub = publisher();
    pub.onState({ ...rec('t7', 'created'), history: [{ state: 'created', time: 'now' }] });
    pub.onState(rec('t7', 'running'));
    pub.onState(rec('t7', 'finished', 0));
    await until(
      async () => (await readAll('t7', 'stdout')).some((e) => e.kind === 'end'),
      'the end',
    );
    const events = await readAll('t7', 'stdout');
    expect(text(events)).toBe('old run\nnew\n');
    expect(events.map((e) => [e.kind, e.offset])).toEqual([
      ['data', 0],
      ['restart', 8],
      ['data', 8],
      ['end', 12],
      ['sofar', 12],
    ]);
  });

  it('takes a log up where it stands after a restart, and two writers never interleave', async () => {
    append('t4.stdout', 'one\n');
    const first = publisher();
    first.onState(rec('t4', 'running'));
    await until(async () => text(await readAll('t4', 'stdout')) === 'one\n', 'first writer');
    // A second publisher (a restarted runner, the first not yet gone) on the same task.
    const second = publisher();
    second.onState(rec('t4', 'running'));
    for (let i = 0; i < 20; i++) append('t4.stdout', `line ${i}\n`);
    const want = defined(files.get('t4.stdout'), "files.get('t4.stdout')").toString();
    await until(async () => text(await readAll('t4', 'stdout')) === want, 'both writers');
    await first.close();
    append('t4.stdout', 'last\n');
    second.onState(rec('t4', 'finished', 0));
    await until(
      async () => (await readAll('t4', 'stdout')).some((e) => e.kind === 'end'),
      'the end',
    );
    const events = await readAll('t4', 'stdout');
    expect(text(events)).toBe(`${want}last\n`);
    // Every piece is on the stream once, in order: indices and offsets contiguous.
    const kept = await bus.jsm.streams.getMessage(streams.taskLogs(P), {
      last_by_subj: subjects.taskLog(P, 'q1', 't4', 'stdout'),
    });
    expect(kept).not.toBeNull();
    const lastIndex = (defined(kept, 'kept').json() as { body: { index: number } }).body.index;
    const subject = subjects.taskLog(P, 'q1', 't4', 'stdout');
    const info = await bus.jsm.streams.info(streams.taskLogs(P), { subjects_filter: subject });
    expect(info.state.subjects?.[subject]).toBe(lastIndex + 1);
    expect(events.filter((e) => e.kind === 'data').length).toBe(lastIndex);
  });
});
