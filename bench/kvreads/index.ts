// pnpm bench kvreads: what a KV read costs on a 3-node cluster (CP_REPLICAS=3) when it asks the
// bucket stream's leader (STREAM.MSG.GET: every read on a cluster since 7fdbb33) against a direct
// get (DIRECT.GET: any replica answers), on the same cluster in the same run, rounds alternating
// the order. Figures: latency of one read at a time (p50, p99), reads a second with 32 in flight,
// the client's and the cluster's CPU a read, and reads made right after a write through another
// node that found an older value (why leader reads: direct gets may lag a write just made).
// The cluster is the test kit's (TLS, operator auth), as `up --cluster` runs it.
import { Bus, quietLogger, type TypedKv } from '@computepods/bus';
import { buckets } from '@computepods/protocol';
import { NatsCluster } from '@computepods/testkit';
import { z } from 'zod';
import { Stack } from '../../test/src/stack.js';
import { cpuMsOf } from '../lib/cpu.js';
import { finish, percentile, table } from '../lib/report.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 4);
const KEYS = 500;
const SERIAL_N = Number(process.env.BENCH_KV_SERIAL ?? 2_000);
const PARALLEL_N = Number(process.env.BENCH_KV_PARALLEL ?? 10_000);
const IN_FLIGHT = 32;
const RYW_N = Number(process.env.BENCH_KV_RYW ?? 500);

const Value = z.object({ n: z.number(), pad: z.string() });
type Kv = TypedKv<typeof Value>;
type Mode = 'leader' | 'direct';

interface RoundFigures {
  p50Us: number;
  p99Us: number;
  perSec: number;
  clientUsPerRead: number;
  clusterUsPerRead: number;
  stale: number;
}

const stack = await Stack.start('kvreads', { cluster: true });
const logger = quietLogger('bench-kvreads');
const connect = (servers: string, service: string) =>
  Bus.connect({
    servers,
    credsFile: stack.adminCreds,
    service,
    project: stack.project,
    logger,
    discoverable: false,
  });
if (!(stack.nats instanceof NatsCluster)) throw new Error('the stack runs no cluster');
const nodes = stack.nats.nodes;
// The writer on node 1, the reader on node 2: a read right after a write crosses the cluster.
const writerBus = await connect(nodes[0]!.url, 'kv-writer');
const readerBus = await connect(nodes[1]!.url, 'kv-reader');
const bucket = buckets.artefacts(stack.project);
const writer = await writerBus.kv(bucket, Value);
const readers: Record<Mode, Kv> = {
  leader: await readerBus.kv(bucket, Value, { leaderReads: true }),
  direct: await readerBus.kv(bucket, Value, { leaderReads: false }),
};
const pad = 'x'.repeat(200);
for (let i = 0; i < KEYS; i++) await writer.put(`k/${i}`, { n: i, pad });
const clusterCpu = () => nodes.reduce((sum, n) => sum + cpuMsOf(n.pid), 0);
const clientCpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

async function round(mode: Mode, seq: number): Promise<RoundFigures> {
  const kv = readers[mode];
  const lat: number[] = [];
  const cpu0 = clientCpu();
  const srv0 = clusterCpu();
  for (let i = 0; i < SERIAL_N; i++) {
    const s = performance.now();
    const got = await kv.get(`k/${(i * 7) % KEYS}`);
    lat.push(performance.now() - s);
    if (!got) throw new Error(`${mode}: k/${(i * 7) % KEYS} not found`);
  }
  const clientUsPerRead = ((clientCpu() - cpu0) * 1000) / SERIAL_N;
  const clusterUsPerRead = ((clusterCpu() - srv0) * 1000) / SERIAL_N;
  lat.sort((a, b) => a - b);
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (next < PARALLEL_N) await kv.get(`k/${next++ % KEYS}`);
    }),
  );
  const perSec = PARALLEL_N / ((performance.now() - t0) / 1000);
  // A write acknowledged through node 1, then at once a read through node 2.
  let stale = 0;
  for (let i = 0; i < RYW_N; i++) {
    const n = seq * 1_000_000 + i;
    await writer.put(`ryw/${i % 50}`, { n, pad });
    if ((await kv.get(`ryw/${i % 50}`))?.value.n !== n) stale++;
  }
  return {
    p50Us: percentile(lat, 50) * 1000,
    p99Us: percentile(lat, 99) * 1000,
    perSec,
    clientUsPerRead,
    clusterUsPerRead,
    stale,
  };
}

const all: Record<Mode, RoundFigures[]> = { leader: [], direct: [] };
let seq = 0;
for (let r = 0; r < ROUNDS; r++) {
  const order: Mode[] = r % 2 === 0 ? ['leader', 'direct'] : ['direct', 'leader'];
  for (const mode of order) all[mode].push(await round(mode, ++seq));
}
await writerBus.close();
await readerBus.close();
await stack[Symbol.asyncDispose]();

const median = (xs: number[]) =>
  percentile(
    [...xs].sort((a, b) => a - b),
    50,
  );
const med = (mode: Mode, k: keyof RoundFigures) => median(all[mode].map((f) => f[k]));
const sum = (mode: Mode) => all[mode].reduce((s, f) => s + f.stale, 0);
const keys: (keyof RoundFigures)[] = [
  'p50Us',
  'p99Us',
  'perSec',
  'clientUsPerRead',
  'clusterUsPerRead',
];
table(
  `KV reads on a 3-node cluster, medians of ${ROUNDS} alternated rounds (${SERIAL_N} reads one at a time, ${PARALLEL_N} with ${IN_FLIGHT} in flight, ${RYW_N} reads right after a write through another node a round)`,
  ['read', 'p50 us', 'p99 us', 'reads/s', 'client CPU us/read', 'cluster CPU us/read', 'stale'],
  (['leader', 'direct'] as const).map((m) => [
    m === 'leader' ? 'leader (STREAM.MSG.GET)' : 'direct (DIRECT.GET)',
    ...keys.map((k) => med(m, k)),
    `${sum(m)} of ${RYW_N * ROUNDS}`,
  ]),
);
const figures: Record<string, number> = { rounds: ROUNDS, ryw_reads: RYW_N * ROUNDS };
for (const m of ['leader', 'direct'] as const) {
  for (const k of keys) figures[`${m}_${k}`] = med(m, k);
  figures[`${m}_stale`] = sum(m);
}
for (const k of keys) figures[`ratio_${k}`] = med('leader', k) / med('direct', k);
finish('kvreads', figures);
