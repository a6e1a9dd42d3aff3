import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, rmSync, statfsSync, writeSync } from 'node:fs';
import { Envelope, subjects } from '@computepods/protocol';
import { defined, NatsServer, TempDir } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Bus } from './bus.js';
import { quietLogger } from './logger.js';

// JetStream's store runs out of room. (a) The real thing: the store lives on a small ext4
// filesystem loop-mounted for this file (truncate + mkfs.ext4 + mount -o loop; the tests run
// as root), and another process fills that disk under a running server. (b) The server's own
// storage limit (max_file_store) reached, which the server refuses with a JetStream error.
// Either way a publish that was not stored is never acknowledged, nothing acknowledged is
// lost or corrupt, and publishing works again once there is room.
const P = 'storefull';
const logger = quietLogger('store-full-test');
const tmp = new TempDir('cp-store-full-');
const image = tmp.join('js.img');
const mnt = tmp.join('mnt');
const filler = `${mnt}/filler`;
let mounted = false;
let onDisk: NatsServer;
let limited: NatsServer;

beforeAll(async () => {
  mkdirSync(mnt);
  execFileSync('truncate', ['-s', '64M', image]);
  execFileSync('mkfs.ext4', ['-q', '-F', '-m', '0', image]);
  execFileSync('mount', ['-o', 'loop', image, mnt]);
  mounted = true;
  // One after the other, each kept as soon as it runs: afterAll stops whatever started.
  onDisk = await NatsServer.start({ storeDir: `${mnt}/jetstream` });
  limited = await NatsServer.start({ maxFileStoreBytes: 1024 * 1024 });
}, 60_000);
afterAll(async () => {
  await onDisk?.[Symbol.asyncDispose]();
  await limited?.[Symbol.asyncDispose]();
  if (mounted) execFileSync('umount', [mnt]);
  tmp[Symbol.dispose]();
}, 60_000);

const sha = 'c'.repeat(64);
/** A files.changed body of about `events` × 100 bytes. */
const body = (tag: string, events = 40) => ({
  pod: 'pod-a',
  events: Array.from({ length: events }, (_, i) => ({
    kind: 'changed' as const,
    path: `src/${tag}/file-${i}.txt`,
    size: i,
    mtimeNs: String(i),
    sha256: sha,
  })),
});

async function connectBus(server: NatsServer, stream: string): Promise<Bus> {
  const bus = await Bus.connect({ servers: server.url, service: 'tester', project: P, logger });
  await bus.ensureStream({
    name: stream,
    subjects: [subjects.filesChangedAll(P)],
    retention: 'limits',
  });
  return bus;
}

/** Every message of the stream, read back by sequence, as envelopes (throws on a corrupt one). */
async function readAll(bus: Bus, stream: string): Promise<{ seq: number; tag: string }[]> {
  const info = await bus.jsm.streams.info(stream);
  const out: { seq: number; tag: string }[] = [];
  for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
    const m = await bus.jsm.streams.getMessage(stream, { seq });
    if (!m) throw new Error(`${stream} has no message ${seq} between its first and last`);
    const env = Envelope.parse(m.json());
    const path = defined((env.body as ReturnType<typeof body>).events[0], 'an event').path;
    out.push({ seq, tag: defined(path.split('/')[1], 'a tag') });
  }
  return out;
}

/** Another process fills the disk: 1 MiB writes, then 4 KiB ones, until ENOSPC. */
function fillDisk(): void {
  const fd = openSync(filler, 'w');
  try {
    for (const size of [1 << 20, 4096]) {
      const chunk = Buffer.alloc(size, 1);
      try {
        for (;;) writeSync(fd, chunk);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
      }
    }
  } finally {
    closeSync(fd);
  }
}

/** The error and its causes, as text. */
function causes(err: unknown): string {
  const out: string[] = [];
  for (let e = err, d = 0; e instanceof Error && d < 5; e = e.cause, d++)
    out.push(`${e.name}: ${e.message} (${String((e as { code?: unknown }).code)})`);
  return out.join(' <- ');
}

describe('JetStream when its store runs out of room', { timeout: 120_000 }, () => {
  it('(a) the disk of the store fills up under the server: nothing unacknowledged counts as stored, nothing acknowledged is lost or corrupt, and it recovers when space returns', async () => {
    const stream = 'STOREFULL_DISK';
    const bus = await connectBus(onDisk, stream);
    const subject = subjects.filesChanged(P, 'pod-a');
    const acked: number[] = [];
    for (let i = 0; i < 20; i++)
      acked.push((await bus.publish('files.changed', subject, body(`before-${i}`))).seq);

    fillDisk();
    const free = statfsSync(mnt);
    expect(free.bavail * free.bsize).toBeLessThan(2 * 1024 * 1024);
    // Publish until the disk refuses; each publish either is acknowledged (stored) or fails.
    let refused: Error | undefined;
    for (let i = 0; i < 400 && !refused; i++) {
      try {
        const ack = await bus.publish('files.changed', subject, body(`full-${i}`), {
          retryForMs: 3_000,
        });
        acked.push(ack.seq);
      } catch (err) {
        refused = err as Error;
      }
    }
    expect(refused, 'a publish to a full disk was acknowledged every time').toBeDefined();
    // nats-server 2.9 answers nothing once its store's disk is full to the last block (no
    // log line either): the Bus gives up after retryForMs, so the producer knows the message
    // was not stored. (With a little room left it answers 10077 "no space left on device".)
    expect(causes(refused)).toMatch(/timeout|no space left on device/);
    await bus.close();

    // Space returns. JetStream stays stuck until the server restarts (what a supervisor or
    // the operator does); then it recovers every acknowledged message from the disk.
    rmSync(filler);
    await onDisk.stop();
    await onDisk.start();
    const again = await connectBus(onDisk, stream);
    try {
      const after = await again.publish('files.changed', subject, body('after'), {
        retryForMs: 30_000,
      });
      const stored = await readAll(again, stream);
      // every acknowledged message is there, readable (a valid envelope), in order; the new
      // one after them; nothing half-written in between
      expect(stored.slice(0, acked.length).map((s) => s.seq)).toEqual(acked);
      expect(stored.slice(0, 20).map((s) => s.tag)).toEqual(
        Array.from({ length: 20 }, (_, i) => `before-${i}`),
      );
      expect(stored.at(-1)).toEqual({ seq: after.seq, tag: 'after' });
      expect(stored.length).toBeLessThanOrEqual(acked.length + 2);
    } finally {
      await again.close();
    }
  });

  it('(b) the server storage limit (max_file_store) reached: refused at once with the reason, nothing stored half, and publishing works again once room is made', async () => {
    const stream = 'STOREFULL_LIMIT';
    const bus = await connectBus(limited, stream);
    try {
      const subject = subjects.filesChanged(P, 'pod-a');
      let refused: unknown;
      let stored = 0;
      for (let i = 0; i < 1_000 && !refused; i++) {
        try {
          await bus.publish('files.changed', subject, body(`m-${i}`), { retryForMs: 3_000 });
          stored++;
        } catch (err) {
          refused = err;
        }
      }
      expect(refused, 'the 1 MiB limit was never reached').toBeDefined();
      // JetStream's "insufficient resources" (10023): the server's store limit, said at once
      expect(causes(refused)).toMatch(/insufficient resources|storage quota/);
      expect(stored).toBeGreaterThan(0);
      const kept = await readAll(bus, stream);
      expect(kept.map((k) => k.tag)).toEqual(Array.from({ length: stored }, (_, i) => `m-${i}`));

      // room is made (old events expire or an admin purges them): publishing works at once
      await bus.jsm.streams.purge(stream, { keep: 1 });
      const ack = await bus.publish('files.changed', subject, body('after'), {
        retryForMs: 10_000,
      });
      expect(ack.seq).toBe(stored + 1);
      expect((await readAll(bus, stream)).map((k) => k.tag)).toEqual([`m-${stored - 1}`, 'after']);
    } finally {
      await bus.close();
    }
  });
});
