import { readFileSync } from 'node:fs';
import { Bus, ensureProjectStreams, quietLogger } from '@computepods/bus';
import { envelope, isRetryable, subjects } from '@computepods/protocol';
import { defined, NatsServer, until } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LogUnconfirmedError } from './errors.js';
import { type FollowedChunk, followLogs } from './follow.js';
import { publishLogChunk } from './publish.js';

let nats: NatsServer;
let bus: Bus;
const project = 'follow';

beforeAll(async () => {
  nats = await NatsServer.start();
  const logger = quietLogger('follow-test');
  bus = await Bus.connect({ servers: nats.url, service: 'follow-test', project, logger });
  await ensureProjectStreams(bus, project);
}, 60_000);

afterAll(async () => {
  await bus?.close();
  await nats?.[Symbol.asyncDispose]();
});

const bytes = (s: string) => new TextEncoder().encode(s);

describe('publishLogChunk + followLogs', () => {
  it('cuts a large chunk into pieces that reassemble in order', async () => {
    const got: FollowedChunk[] = [];
    const f = followLogs(bus, project, (c) => got.push(c), { pod: 'big' });
    const data = new Uint8Array(700_000).map((_, i) => i % 251);
    await publishLogChunk(bus, 'big', { path: 'out/run.log', offset: 1000, data, truncated: true });
    await until(() => got.reduce((n, c) => n + c.data.length, 0) === data.length, 'all pieces');
    await f.stop();
    expect(got.length).toBeGreaterThan(1);
    expect(Buffer.concat(got.map((c) => c.data)).equals(Buffer.from(data))).toBe(true);
    let at = 1000;
    for (const [i, c] of got.entries()) {
      expect(c.offset).toBe(at);
      expect(c.truncated).toBe(i === 0);
      expect(c.missed).toBe(0);
      at += c.data.length;
    }
  });

  it('drops repeats, trims overlaps, reports gaps, and restarts on truncation', async () => {
    const got: FollowedChunk[] = [];
    const f = followLogs(bus, project, (c) => got.push(c), { pod: 'p1', path: 'a.log' });
    const send = (offset: number, text: string, flags: { truncated?: boolean } = {}) =>
      publishLogChunk(bus, 'p1', { path: 'a.log', offset, data: bytes(text), ...flags });
    await send(0, 'hello ');
    await send(0, 'hello '); // re-sent after a lost confirmation
    await send(3, 'lo world'); // overlaps what was seen
    await send(20, 'later'); // 9 bytes never seen
    await publishLogChunk(bus, 'p1', { path: 'other.log', offset: 0, data: bytes('x') });
    await publishLogChunk(bus, 'p2', { path: 'a.log', offset: 0, data: bytes('y') });
    await send(0, 'again', { truncated: true });
    await until(() => got.some((c) => c.truncated), 'the truncation');
    await f.stop();
    expect(got.map((c) => [c.offset, c.data.toString(), c.missed, c.truncated])).toEqual([
      [0, 'hello ', 0, false],
      [6, 'world', 0, false],
      [20, 'later', 9, false],
      [0, 'again', 0, true],
    ]);
  });

  it('ignores and dead-letters a malformed chunk, and keeps following', async () => {
    const got: FollowedChunk[] = [];
    const letters: string[] = [];
    const dlq = bus.nc.subscribe(subjects.deadLetter(project, 'follow-test'), {
      callback: (_e, m) => {
        letters.push(m.string());
      },
    });
    const f = followLogs(bus, project, (c) => got.push(c), { pod: 'p3' });
    const bad = envelope(
      'log.chunk',
      { pod: 'p3', path: '../etc/passwd', offset: -1, data: 'not base64!' },
      { project, source: 'evil' },
    );
    bus.nc.publish(subjects.logs(project, 'p3'), JSON.stringify(bad));
    await publishLogChunk(bus, 'p3', { path: 'ok.log', offset: 0, data: bytes('fine') });
    await until(() => got.length === 1 && letters.length === 1, 'the good chunk and the letter');
    await f.stop();
    dlq.unsubscribe();
    expect(got[0]?.data.toString()).toBe('fine');
    expect(letters[0]).toMatch(/body\.path/);
  });

  it('rejects with LogUnconfirmedError, retryable, when the server never confirms the chunk', async () => {
    // A server of its own, frozen: it holds the connection but answers nothing.
    const frozen = await NatsServer.start();
    const logger = quietLogger('follow-test-frozen');
    const b = await Bus.connect({ servers: frozen.url, service: 'frozen', project, logger });
    const pid = defined(frozen.pid, "the frozen server's pid");
    // No answer of the server's may still be on its way (a PONG for an earlier PING would
    // confirm the chunk's flush), and it is stopped before the chunk goes: a signal takes
    // effect asynchronously (fresh-clone CI once saw the chunk confirmed).
    await b.nc.flush();
    process.kill(pid, 'SIGSTOP');
    await until(
      () => readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.startsWith('T') === true,
      'the server stopped',
    );
    try {
      const chunk = { path: 'out/run.log', offset: 0, data: bytes('never confirmed') };
      const err = await publishLogChunk(b, 'p4', chunk, { flushTimeoutMs: 200 }).catch(
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(LogUnconfirmedError);
      expect(err).toMatchObject({ code: 'CP_LOG_UNCONFIRMED', path: 'out/run.log' });
      expect(isRetryable(err)).toBe(true);
    } finally {
      process.kill(pid, 'SIGCONT');
      await b.close();
      await frozen[Symbol.asyncDispose]();
    }
  });
});
