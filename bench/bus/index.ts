// pnpm bench bus: the bus layer (envelope + zod validation on both sides) against the raw
// @nats-io client, on the same nats-server in the same run. Goal: overhead at most 20%.
// Then the secure default against an open server, in the same run, rounds alternating: the
// server in operator mode (the project an account), a member asking and a MajorDomo answering,
// a fswatcher publishing, each with its role's credentials. Goal: at most 10% slower.
import { randomUUID } from 'node:crypto';
import {
  AuthStore,
  type Grant,
  provisionProject,
  provisionRegistry,
  serverConfigLines,
} from '@computepods/auth';
import { Bus, type createLogger, ensureProjectStreams, quietLogger } from '@computepods/bus';
import { subjects } from '@computepods/protocol';
import { NatsServer, TempDir } from '@computepods/testkit';
import { z } from 'zod';
import { cpuMsOf } from '../lib/cpu.js';
import { finish, percentile, table } from '../lib/report.js';

const P = 'bench';
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const RTT_N = 5_000;
const PUB_N = 20_000;
const WINDOW = 256;

const body = {
  pod: 'pod-a',
  events: [
    {
      kind: 'changed' as const,
      path: 'src/paper/main.tex',
      size: 1234,
      mtimeNs: '1700000000000000000',
      sha256: 'a'.repeat(64),
    },
  ],
};

async function timeRtt(
  call: () => Promise<unknown>,
): Promise<{ p50: number; p99: number; perSec: number }> {
  const lat: number[] = [];
  const t0 = performance.now();
  for (let i = 0; i < RTT_N; i++) {
    const s = performance.now();
    await call();
    lat.push(performance.now() - s);
  }
  const total = performance.now() - t0;
  lat.sort((a, b) => a - b);
  return {
    p50: percentile(lat, 50) * 1000,
    p99: percentile(lat, 99) * 1000,
    perSec: RTT_N / (total / 1000),
  };
}

async function timePublish(publish: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < PUB_N; i += WINDOW) {
    const batch: Promise<unknown>[] = [];
    for (let j = 0; j < WINDOW && i + j < PUB_N; j++) batch.push(publish());
    await Promise.all(batch);
  }
  return PUB_N / ((performance.now() - t0) / 1000);
}

const best = <T>(xs: T[], key: (x: T) => number, dir: 'max' | 'min') =>
  xs.reduce((a, b) => (dir === 'max' ? (key(b) > key(a) ? b : a) : key(b) < key(a) ? b : a));

async function main(): Promise<void> {
  await using nats = await NatsServer.start();
  const logger = quietLogger('bench');
  const server = await Bus.connect({
    servers: nats.url,
    service: 'bench-server',
    project: P,
    logger,
  });
  const client = await Bus.connect({
    servers: nats.url,
    service: 'bench-client',
    project: P,
    logger,
    discoverable: false,
  });
  const Req = z.object({ path: z.string(), n: z.number() });
  const Res = z.object({ ok: z.boolean(), n: z.number() });
  server.serve('echo', Req, async (b) => ({ ok: true, n: b.n }));
  server.nc.subscribe('raw.echo', {
    callback: (_e, m) => {
      const b = JSON.parse(new TextDecoder().decode(m.data)) as { n: number };
      m.respond(JSON.stringify({ ok: true, n: b.n }));
    },
  });
  await server.ensureStream({
    name: 'bench_pub',
    subjects: [subjects.filesChangedAll(P)],
    retention: 'limits',
    maxMsgs: 100_000,
  });
  const raw = client.nc;
  const js = client.js;
  const subject = subjects.filesChanged(P, 'pod-bench');
  const rawPayload = () => JSON.stringify(body);

  // warm-up
  for (let i = 0; i < 500; i++) {
    await client.request('echo', { path: 'x', n: i }, Res);
    await raw.request('raw.echo', JSON.stringify({ path: 'x', n: i }));
  }
  const rtt = {
    bus: [] as Awaited<ReturnType<typeof timeRtt>>[],
    raw: [] as Awaited<ReturnType<typeof timeRtt>>[],
  };
  const pub = { bus: [] as number[], raw: [] as number[], rawNoId: [] as number[] };
  for (let r = 0; r < ROUNDS; r++) {
    let n = 0;
    rtt.raw.push(
      await timeRtt(() => raw.request('raw.echo', JSON.stringify({ path: 'src/a.txt', n: n++ }))),
    );
    rtt.bus.push(await timeRtt(() => client.request('echo', { path: 'src/a.txt', n: n++ }, Res)));
    // The bus gives every message a msgId (so retries can never store it twice); the raw
    // client gets one too, so the comparison is of validation + envelope alone.
    pub.raw.push(
      await timePublish(() => js.publish(subject, rawPayload(), { msgID: randomUUID() })),
    );
    pub.rawNoId.push(await timePublish(() => js.publish(subject, rawPayload())));
    pub.bus.push(await timePublish(() => client.publish('files.changed', subject, body)));
  }
  const rb = best(rtt.bus, (x) => x.perSec, 'max');
  const rr = best(rtt.raw, (x) => x.perSec, 'max');
  const pb = Math.max(...pub.bus);
  const pr = Math.max(...pub.raw);
  const prNoId = Math.max(...pub.rawNoId);
  table(
    `bus vs raw @nats-io on one nats-server (${nats.url}), best of ${ROUNDS} rounds`,
    ['measure', 'raw', 'bus', 'bus/raw'],
    [
      ['request/reply per s', rr.perSec, rb.perSec, rb.perSec / rr.perSec],
      ['request/reply p50 µs', rr.p50, rb.p50, rb.p50 / rr.p50],
      ['request/reply p99 µs', rr.p99, rb.p99, rb.p99 / rr.p99],
      [`JetStream publish per s (${WINDOW} in flight, msgId)`, pr, pb, pb / pr],
      ['raw publish without msgId (dedupe off)', prNoId, pb, pb / prNoId],
    ],
  );
  const rttOverhead = rr.perSec / rb.perSec - 1;
  const pubOverhead = pr / pb - 1;
  console.log(
    `\noverhead: request/reply ${(rttOverhead * 100).toFixed(1)}%, publish ${(pubOverhead * 100).toFixed(1)}% (goal ≤ 20%)`,
  );
  await client.close();
  await server.close();

  const secure = await openVsSecure(logger, Req, Res);
  table(
    `the secure default (operator mode, least-privilege credentials) vs an open server, best of ${ROUNDS} alternating rounds`,
    ['measure', 'open', 'secure', 'secure/open'],
    [
      [
        'bus request/reply per s',
        secure.open.rtt,
        secure.secure.rtt,
        secure.secure.rtt / secure.open.rtt,
      ],
      [
        'bus request/reply p50 µs',
        secure.open.p50,
        secure.secure.p50,
        secure.secure.p50 / secure.open.p50,
      ],
      [
        'bus publish per s',
        secure.open.pub,
        secure.secure.pub,
        secure.secure.pub / secure.open.pub,
      ],
      [
        'nats-server CPU µs per request',
        secure.open.rttCpuUs,
        secure.secure.rttCpuUs,
        secure.secure.rttCpuUs / secure.open.rttCpuUs,
      ],
      [
        'nats-server CPU µs per publish',
        secure.open.pubCpuUs,
        secure.secure.pubCpuUs,
        secure.secure.pubCpuUs / secure.open.pubCpuUs,
      ],
    ],
  );
  const secureRtt = secure.open.rtt / secure.secure.rtt - 1;
  const securePub = secure.open.pub / secure.secure.pub - 1;
  console.log(
    `\nsecure default overhead: request/reply ${(secureRtt * 100).toFixed(1)}%, publish ${(securePub * 100).toFixed(1)}% (goal ≤ 10%)`,
  );
  finish('bus', {
    secure_open_rtt_per_s: secure.open.rtt,
    secure_rtt_per_s: secure.secure.rtt,
    secure_open_rtt_p50_us: secure.open.p50,
    secure_rtt_p50_us: secure.secure.p50,
    secure_open_publish_per_s: secure.open.pub,
    secure_publish_per_s: secure.secure.pub,
    secure_open_server_cpu_us_per_request: secure.open.rttCpuUs,
    secure_server_cpu_us_per_request: secure.secure.rttCpuUs,
    secure_open_server_cpu_us_per_publish: secure.open.pubCpuUs,
    secure_server_cpu_us_per_publish: secure.secure.pubCpuUs,
    secure_server_cpu_ratio_request: secure.secure.rttCpuUs / secure.open.rttCpuUs,
    secure_server_cpu_ratio_publish: secure.secure.pubCpuUs / secure.open.pubCpuUs,
    secure_rtt_overhead: secureRtt,
    secure_publish_overhead: securePub,
    goal_secure_overhead_max: 0.1,
    goal_secure_met: secureRtt <= 0.1 && securePub <= 0.1,
    rtt_raw_per_s: rr.perSec,
    rtt_bus_per_s: rb.perSec,
    rtt_raw_p50_us: rr.p50,
    rtt_bus_p50_us: rb.p50,
    rtt_raw_p99_us: rr.p99,
    rtt_bus_p99_us: rb.p99,
    publish_raw_per_s: pr,
    publish_bus_per_s: pb,
    publish_raw_no_msgid_per_s: prNoId,
    msgid_cost_raw: prNoId / pr - 1,
    rtt_ratio_bus_over_raw: rb.perSec / rr.perSec,
    publish_ratio_bus_over_raw: pb / pr,
    rtt_overhead: rttOverhead,
    publish_overhead: pubOverhead,
    goal_overhead_max: 0.2,
    goal_met: rttOverhead <= 0.2 && pubOverhead <= 0.2,
  });
}

interface Side {
  readonly server: Bus;
  readonly client: Bus;
  readonly publisher: Bus;
}

/**
 * The same bus calls on two servers started alike: one open, one in operator mode with the
 * project provisioned and each party holding its role's credentials. Same streams on both.
 */
async function openVsSecure(
  logger: ReturnType<typeof createLogger>,
  Req: z.ZodType<{ path: string; n: number }>,
  Res: z.ZodType<{ ok: boolean; n: number }>,
): Promise<
  Record<
    'open' | 'secure',
    { rtt: number; p50: number; pub: number; rttCpuUs: number; pubCpuUs: number }
  >
> {
  const dir = new TempDir('cp-bench-auth-');
  const store = await AuthStore.open(dir.join('auth'));
  await using open = await NatsServer.start();
  await using locked = await NatsServer.start({
    configLines: () => serverConfigLines(store, dir.join('resolver')),
  });
  await provisionRegistry(store, locked.url);
  await provisionProject({ store, servers: locked.url, project: P });
  const as = async (url: string, service: string, grant?: Grant) =>
    Bus.connect({
      servers: url,
      service,
      project: P,
      logger,
      discoverable: false,
      ...(grant ? { credsFile: await store.grantCreds(grant) } : { credsFile: '' }),
    });
  const sides: Record<'open' | 'secure', Side> = {
    open: {
      server: await as(open.url, 'majordomo'),
      client: await as(open.url, 'cpctrl'),
      publisher: await as(open.url, 'fswatcher'),
    },
    secure: {
      server: await as(locked.url, 'majordomo', { role: 'majordomo', project: P }),
      client: await as(locked.url, 'cpctrl', { role: 'member', project: P, scope: 'mia' }),
      publisher: await as(locked.url, 'fswatcher', {
        role: 'fswatcher',
        project: P,
        scope: 'pod-bench',
      }),
    },
  };
  await ensureProjectStreams(sides.open.server, P);
  const subject = subjects.filesChanged(P, 'pod-bench');
  type Round = { rtt: number; p50: number; pub: number; rttCpuUs: number; pubCpuUs: number };
  const results = { open: [] as Round[], secure: [] as Round[] };
  const pids = { open: open.pid, secure: locked.pid };
  for (const side of Object.values(sides)) {
    side.server.serve('echo', Req, async (b) => ({ ok: true, n: b.n }));
    await side.server.nc.flush(); // the subscription is in place before the first request
    for (let i = 0; i < 500; i++) await side.client.request('echo', { path: 'x', n: i }, Res);
  }
  for (let r = 0; r < ROUNDS; r++) {
    for (const name of ['open', 'secure'] as const) {
      const side = sides[name];
      let n = 0;
      // The server's CPU per operation, beside the wall-clock rates: the checks of operator mode
      // (permissions, account limits) are server work, and CPU time is what load hides least.
      const c0 = cpuMsOf(pids[name]);
      const rtt = await timeRtt(() =>
        side.client.request('echo', { path: 'src/a.txt', n: n++ }, Res),
      );
      const c1 = cpuMsOf(pids[name]);
      const pub = await timePublish(() => side.publisher.publish('files.changed', subject, body));
      const c2 = cpuMsOf(pids[name]);
      results[name].push({
        rtt: rtt.perSec,
        p50: rtt.p50,
        pub,
        rttCpuUs: ((c1 - c0) * 1000) / RTT_N,
        pubCpuUs: ((c2 - c1) * 1000) / PUB_N,
      });
    }
  }
  for (const side of Object.values(sides)) for (const bus of Object.values(side)) await bus.close();
  dir[Symbol.dispose]();
  const bestOf = (xs: Round[]) => ({
    rtt: Math.max(...xs.map((x) => x.rtt)),
    p50: Math.min(...xs.map((x) => x.p50)),
    pub: Math.max(...xs.map((x) => x.pub)),
    rttCpuUs: Math.min(...xs.map((x) => x.rttCpuUs)),
    pubCpuUs: Math.min(...xs.map((x) => x.pubCpuUs)),
  });
  return { open: bestOf(results.open), secure: bestOf(results.secure) };
}

await main();
