/**
 * Response permissions and JetStream deliveries (#15 follow-up to bus 974a660): nats-server 2.9
 * records the reply subject of every message delivered to a user with response permissions
 * (every JetStream delivery has one, `$JS.ACK...`) until the permission's TTL, and past 4,096
 * records walks them all on every delivery (pruneReplyPerms). This bench watches the tasks
 * bucket with a role's real credentials (roles.ts: its short TTL) and with the same permissions
 * but the TTL they had before (0 in the JWT: 2 minutes), while an admin writes task records at
 * a steady rate: the server's CPU over the run's last third (when the records have built up)
 * and its RSS. One fresh operator-mode server (the test kit's) per variant, in turn.
 *
 *   CP_BENCH_RESP_RATE  task records written per second (default 300)
 *   CP_BENCH_RESP_SECS  seconds per variant (default 150: past MajorDomo's 60 s and the old 120 s)
 *   CP_BENCH_RESP_ROLES roles to compare (default runner,majordomo)
 */
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  AuthStore,
  type Grant,
  permissionsFor,
  projectAccount,
  provisionProject,
  type RoleName,
  serverConfigLines,
  userName,
} from '@computepods/auth';
import { Bus, quietLogger } from '@computepods/bus';
import { buckets } from '@computepods/protocol';
import { freePort, NatsServer, TempDir } from '@computepods/testkit';
import { z } from 'zod';
import { finish, table } from '../lib/report.js';

const Env = z.object({
  CP_BENCH_RESP_RATE: z.coerce.number().int().positive().default(300),
  CP_BENCH_RESP_SECS: z.coerce.number().int().min(6).default(150),
  CP_BENCH_RESP_ROLES: z.string().default('runner,majordomo'),
});
const env = Env.parse(process.env);
const RATE = env.CP_BENCH_RESP_RATE;
const SECS = env.CP_BENCH_RESP_SECS;
const ROLES = z
  .array(z.enum(['majordomo', 'chef', 'runner']))
  .parse(env.CP_BENCH_RESP_ROLES.split(','));
const P = 'bench';
const Varz = z.object({ mem: z.number() });
const logger = quietLogger('bench-resp');

/** A process's user + system CPU in ms (/proc, USER_HZ 100). */
function cpuMs(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return (Number(f[11]) + Number(f[12])) * 10;
}

interface Row {
  role: RoleName;
  resp: string;
  written: number;
  delivered: number;
  cpuAll: number;
  cpuLast: number;
  rssMiB: number;
}

async function run(role: RoleName, before: boolean): Promise<Row> {
  const dir = new TempDir('cp-bench-resp-');
  const store = await AuthStore.open(dir.join('auth'));
  const http = await freePort();
  const nats = await NatsServer.start({
    configLines: () => [
      ...serverConfigLines(store, dir.join('resolver')),
      `http: "127.0.0.1:${http}"`,
    ],
  });
  const open: Bus[] = [];
  try {
    await provisionProject({ store, servers: nats.url, project: P });
    const grant: Grant = { role, project: P, scope: role === 'majordomo' ? undefined : 'b1' };
    const now = permissionsFor(grant);
    const perms = before ? { ...now, resp: { max: 1, ttl: 0 } } : now;
    const creds = await store.userCreds(projectAccount(P), userName(grant), perms);
    const connect = async (credsFile: string) => {
      const bus = await Bus.connect({
        servers: nats.url,
        credsFile,
        service: role,
        project: P,
        logger,
        discoverable: false,
      });
      open.push(bus);
      return bus;
    };
    const admin = await connect(await store.grantCreds({ role: 'admin', project: P }));
    const watcher = await connect(creds);
    const writes = await admin.kv(buckets.tasks(P), z.unknown());
    const reads = await watcher.kv(buckets.tasks(P), z.unknown());
    let delivered = 0;
    const stop = await reads.watch(() => {
      delivered++;
    });
    const pid = nats.pid as number;
    const t0 = Date.now();
    const cpu0 = cpuMs(pid);
    let cpuMark = 0;
    let written = 0;
    const value = { state: 'running', pad: 'x'.repeat(48) };
    while (Date.now() - t0 < SECS * 1000) {
      const due = Math.floor(((Date.now() - t0) / 1000) * RATE);
      const batch: Promise<unknown>[] = [];
      while (written < due) batch.push(writes.put(`t${written++ % 500}`, value));
      await Promise.all(batch);
      if (!cpuMark && Date.now() - t0 >= (SECS * 2000) / 3) cpuMark = cpuMs(pid);
      await sleep(20);
    }
    const cpuEnd = cpuMs(pid);
    const varz = Varz.parse(await (await fetch(`http://127.0.0.1:${http}/varz`)).json());
    stop();
    return {
      role,
      resp: before ? 'ttl 0 (2 min), before' : `${(perms.resp?.ttl ?? 0) / 1e9} s, now`,
      written,
      delivered,
      cpuAll: (100 * (cpuEnd - cpu0)) / (SECS * 1000),
      cpuLast: (100 * (cpuEnd - cpuMark)) / ((SECS * 1000) / 3),
      rssMiB: varz.mem / 2 ** 20,
    };
  } finally {
    await Promise.allSettled(open.map((b) => b.close()));
    await nats[Symbol.asyncDispose]();
    dir[Symbol.dispose]();
  }
}

const load0 = loadavg()[0] ?? 0;
const rows: Row[] = [];
for (const role of ROLES)
  for (const before of [false, true]) {
    rows.push(await run(role, before));
    console.error(JSON.stringify(rows.at(-1)));
  }
table(
  `KV watch of the tasks bucket at ${RATE} records/s for ${SECS} s: nats-server CPU and RSS (load ${load0.toFixed(1)} -> ${(loadavg()[0] ?? 0).toFixed(1)})`,
  ['role', 'resp', 'written', 'delivered', 'server CPU %', 'CPU % last third', 'RSS MiB'],
  rows.map((r) => [r.role, r.resp, r.written, r.delivered, r.cpuAll, r.cpuLast, r.rssMiB]),
);
const figures: Record<string, number | string> = {
  rate: RATE,
  secs: SECS,
  load_start: load0,
  load_end: loadavg()[0] ?? 0,
};
for (const r of rows) {
  const k = `${r.role}_${r.resp.endsWith('before') ? 'before' : 'now'}`;
  figures[`${k}_cpu_last_pct`] = r.cpuLast;
  figures[`${k}_rss_mib`] = r.rssMiB;
  figures[`${k}_delivered`] = r.delivered;
}
finish('resp', figures);
