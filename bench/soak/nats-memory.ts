// What nats-server (the one installed: Debian's 2.9.10) keeps in memory for stored messages,
// apart from everything else the soak bench does. Each case starts a fresh server, stores
// messages of CP_NATSMEM_BYTES bytes (600: about a soak event or task record) the way the
// project stores them, and reads the server's live Go heap (HeapAlloc right after two GCs it is
// asked to run, from its pprof endpoint):
// - the index: CP_NATSMEM_MSGS (20,000) messages at once on one subject, on a subject each, as
//   a KV key each, and a subject each with a 20 s max age (looked at again once expired);
// - the block cache: 200 messages/s for CP_NATSMEM_STEADY_S (80) s on one subject, with and
//   without a consumer reading them as they come (the most heap seen while writing, and after).
//
//   cd bench && npx tsx soak/nats-memory.ts        (a line of JSON per case)
//   CP_NATSMEM_CASE=expired ...                      (only the cases whose name has that text)
import { readFileSync } from 'node:fs';
import { ensureKv } from '@computepods/bus';
import { freePort, NatsServer } from '@computepods/testkit';
import { jetstream, jetstreamManager, RetentionPolicy, StorageType } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';

const MSGS = Number(process.env.CP_NATSMEM_MSGS ?? 20_000);
const BYTES = Number(process.env.CP_NATSMEM_BYTES ?? 600);
const STEADY_S = Number(process.env.CP_NATSMEM_STEADY_S ?? 80);
const AGE_S = 20;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const payload = new Uint8Array(BYTES).fill(120);
const key = (i: number) => `b-${i.toString(36).padStart(40, '0')}`;

/** Two GCs: buffers nats-server recycles through a sync.Pool are only freed by the second. */
async function heapKb(prof: number): Promise<number> {
  await (await fetch(`http://127.0.0.1:${prof}/debug/pprof/heap?gc=1`)).arrayBuffer();
  const text = await (await fetch(`http://127.0.0.1:${prof}/debug/pprof/heap?debug=1&gc=1`)).text();
  return Math.round(Number(/^# HeapAlloc = (\d+)$/m.exec(text)?.[1] ?? Number.NaN) / 1024);
}
const rssKb = (pid: number) =>
  Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);

async function burst(nc: NatsConnection, subject: (i: number) => string): Promise<void> {
  const js = jetstream(nc);
  for (let i = 0; i < MSGS; i += 200)
    await Promise.all(
      Array.from({ length: Math.min(200, MSGS - i) }, (_, k) =>
        js.publish(subject(i + k), payload),
      ),
    );
}
async function stream(nc: NatsConnection, maxAgeS = 0): Promise<void> {
  await (await jetstreamManager(nc)).streams.add({
    name: 'S',
    subjects: ['s.>'],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    max_age: maxAgeS * 1e9,
  });
}

interface Case {
  readonly name: string;
  /** Stores the messages; `look` samples the heap meanwhile (the most seen is reported). */
  readonly run: (nc: NatsConnection, look: () => Promise<void>) => Promise<void>;
  /** Seconds to wait after storing before the last look (max age, cache expiry). */
  readonly waitS: number;
  readonly msgs: number;
}

const cases: Case[] = [
  {
    name: 'index: one subject',
    msgs: MSGS,
    run: async (nc) => {
      await stream(nc);
      await burst(nc, () => 's.one');
    },
    waitS: 10,
  },
  {
    name: 'index: a subject per message',
    msgs: MSGS,
    run: async (nc) => {
      await stream(nc);
      await burst(nc, (i) => `s.task.${key(i)}.stdout`);
    },
    waitS: 10,
  },
  {
    name: 'index: KV (history 5), a key per message',
    msgs: MSGS,
    run: async (nc) => {
      const kv = await ensureKv(nc, 'T', { history: 5, replicas: 1 });
      for (let i = 0; i < MSGS; i += 200)
        await Promise.all(
          Array.from({ length: Math.min(200, MSGS - i) }, (_, k) => kv.put(key(i + k), payload)),
        );
    },
    waitS: 10,
  },
  {
    name: `index: a subject per message, max age ${AGE_S} s, looked at once all expired`,
    msgs: MSGS,
    run: async (nc) => {
      await stream(nc, AGE_S);
      await burst(nc, (i) => `s.task.${key(i)}.stdout`);
    },
    waitS: AGE_S + 60,
  },
  ...[false, true].map(
    (reader): Case => ({
      name: `block cache: 200 msgs/s for ${STEADY_S} s on one subject, ${reader ? 'a consumer reading them as they come' : 'no reader'}`,
      msgs: 200 * STEADY_S,
      run: async (nc, look) => {
        await stream(nc);
        const js = jetstream(nc);
        if (reader) {
          const messages = await (await js.consumers.get('S')).consume();
          void (async () => {
            for await (const m of messages) void m;
          })();
        }
        const t0 = Date.now();
        let next = t0 + 5_000;
        for (let n = 0; n < 200 * STEADY_S; n++) {
          const wait = t0 + n * 5 - Date.now();
          if (wait > 0) await sleep(wait);
          await js.publish('s.one', payload);
          if (Date.now() >= next) {
            next += 5_000;
            await look();
          }
        }
      },
      waitS: 15,
    }),
  ),
];

for (const c of cases.filter((c) => c.name.includes(process.env.CP_NATSMEM_CASE ?? ''))) {
  const prof = await freePort();
  const nats = await NatsServer.start({ configLines: () => [`prof_port: ${prof}`] });
  try {
    const nc = await connect({ servers: nats.url });
    const pid = nats.pid!;
    await sleep(1000);
    const before = await heapKb(prof);
    let most = before;
    await c.run(nc, async () => {
      most = Math.max(most, await heapKb(prof));
    });
    const after = await heapKb(prof);
    most = Math.max(most, after);
    await sleep(c.waitS * 1000);
    const later = await heapKb(prof);
    const si = await (await jetstreamManager(nc)).streams.info(
      (await (await jetstreamManager(nc)).streams.names().next())[0]!,
    );
    await nc.close();
    const perMsg = (kb: number) => Math.round(((kb - before) * 1024) / c.msgs);
    console.log(
      JSON.stringify({
        case: c.name,
        msgs: c.msgs,
        msg_bytes: BYTES,
        stored_msgs_at_end: si.state.messages,
        stored_kb_at_end: Math.round(si.state.bytes / 1024),
        heap_before_kb: before,
        heap_most_kb: most,
        heap_after_kb: after,
        [`heap_${c.waitS}s_later_kb`]: later,
        heap_per_msg_b_after: perMsg(after),
        heap_per_msg_b_later: perMsg(later),
        rss_end_kb: rssKb(pid),
      }),
    );
  } finally {
    await nats[Symbol.asyncDispose]();
  }
}
