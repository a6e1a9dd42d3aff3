// pnpm bench ssh: 1,000 small remote commands (`true`) over one pooled SSH connection against
// a new connection for each command, on a real sshd on loopback, each both sequential and
// CONCURRENCY in flight (like against like). The new-connection cases run NEW_N commands
// (default 100) and are extrapolated to 1,000, since each costs a full TCP + key exchange +
// public-key auth round; the JSON line says which figures are extrapolated.
// Then SFTP throughput, ours against OpenSSH's sftp (./sftp.ts; BENCH_SSH_SFTP=0 skips it).
import { loadavg } from 'node:os';
import { Sshd } from '@computepods/testkit';
import { SshPool } from '@computepods/transport';
import { finish, percentile, table } from '../lib/report.js';
import { sftpBench } from './sftp.js';

const N = Number(process.env.BENCH_SSH_N ?? 1_000);
const NEW_N = Number(process.env.BENCH_SSH_NEW_N ?? 100);
const CONCURRENCY = 10;

interface Timing {
  totalMs: number;
  perSec: number;
  p50Ms: number;
  p99Ms: number;
}

async function timeSequential(n: number, run: () => Promise<void>): Promise<Timing> {
  const lat: number[] = [];
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const s = performance.now();
    await run();
    lat.push(performance.now() - s);
  }
  const totalMs = performance.now() - t0;
  lat.sort((a, b) => a - b);
  return {
    totalMs,
    perSec: n / (totalMs / 1000),
    p50Ms: percentile(lat, 50),
    p99Ms: percentile(lat, 99),
  };
}

async function main(): Promise<void> {
  const loadStart = loadavg()[0]!;
  await using sshd = await Sshd.start();
  const target = sshd.target();
  const check = (r: { code: number | null; stderr: string }) => {
    if (r.code !== 0) throw new Error(`remote command failed (${r.code}): ${r.stderr}`);
  };

  const pool = new SshPool({ minOpenIntervalMs: 0 });
  check(await pool.exec(target, 'true')); // warm: the open is counted in the new-connection case
  const pooled = await timeSequential(N, async () => check(await pool.exec(target, 'true')));
  const pooledStats = pool.stats();

  const tc = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next++ < N) check(await pool.exec(target, 'true'));
    }),
  );
  const concMs = performance.now() - tc;
  const concStats = pool.stats();
  await pool.close();

  // A fresh pool per command: connect, authenticate, exec, close, as code without a pool does.
  let opened = 0;
  const fresh = await timeSequential(NEW_N, async () => {
    const p = new SshPool({ minOpenIntervalMs: 0, connectRetries: 0 });
    check(await p.exec(target, 'true'));
    opened += p.stats().connectionsOpened;
    await p.close();
  });
  const freshExtrapolatedMs = (fresh.totalMs / NEW_N) * N;

  // The same, CONCURRENCY in flight: compared with the pooled concurrent case.
  const tf = performance.now();
  let nextFresh = 0;
  let openedConc = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (nextFresh++ < NEW_N) {
        const p = new SshPool({ minOpenIntervalMs: 0, connectRetries: 0 });
        check(await p.exec(target, 'true'));
        openedConc += p.stats().connectionsOpened;
        await p.close();
      }
    }),
  );
  const freshConcMs = performance.now() - tf;
  const freshConcExtrapolatedMs = (freshConcMs / NEW_N) * N;
  const speedup = freshExtrapolatedMs / pooled.totalMs;

  table(
    `ssh: ${N} x \`true\` on a real sshd (127.0.0.1:${sshd.port}); warm: one pooled connection opened before the clock; cold: connect + key exchange + auth per command`,
    [
      'case',
      'connection',
      'in flight',
      'commands',
      'total ms',
      'cmds/s',
      'p50 ms',
      'p99 ms',
      'new connections',
    ],
    [
      [
        'pooled, sequential',
        'warm',
        1,
        N,
        pooled.totalMs,
        pooled.perSec,
        pooled.p50Ms,
        pooled.p99Ms,
        pooledStats.connectionsOpened,
      ],
      [
        `pooled, ${CONCURRENCY} in flight`,
        'warm',
        CONCURRENCY,
        N,
        concMs,
        N / (concMs / 1000),
        '-',
        '-',
        concStats.connectionsOpened - pooledStats.connectionsOpened,
      ],
      [
        'new connection each, sequential',
        'cold',
        1,
        NEW_N,
        fresh.totalMs,
        fresh.perSec,
        fresh.p50Ms,
        fresh.p99Ms,
        opened,
      ],
      [
        `new connection each, sequential (x${N / NEW_N} extrapolated)`,
        'cold',
        1,
        N,
        freshExtrapolatedMs,
        fresh.perSec,
        '-',
        '-',
        N,
      ],
      [
        `new connection each, ${CONCURRENCY} in flight`,
        'cold',
        CONCURRENCY,
        NEW_N,
        freshConcMs,
        NEW_N / (freshConcMs / 1000),
        '-',
        '-',
        openedConc,
      ],
      [
        `new connection each, ${CONCURRENCY} in flight (x${N / NEW_N} extrapolated)`,
        'cold',
        CONCURRENCY,
        N,
        freshConcExtrapolatedMs,
        NEW_N / (freshConcMs / 1000),
        '-',
        '-',
        N,
      ],
    ],
  );
  console.log(
    `\npooled is ${speedup.toFixed(1)}x faster than a new connection per command, both sequential; ` +
      `${(freshConcExtrapolatedMs / concMs).toFixed(1)}x, both ${CONCURRENCY} in flight` +
      (NEW_N < N ? ` (new-connection totals extrapolated from ${NEW_N} commands)` : ''),
  );

  const sftp = process.env.BENCH_SSH_SFTP === '0' ? {} : await sftpBench(sshd);

  finish('ssh', {
    commands: N,
    pooledTotalMs: pooled.totalMs,
    pooledPerSec: pooled.perSec,
    pooledP50Ms: pooled.p50Ms,
    pooledP99Ms: pooled.p99Ms,
    pooledConnectionsOpened: pooledStats.connectionsOpened,
    pooledReused: pooledStats.reused,
    pooledConcurrency: CONCURRENCY,
    pooledConcurrentTotalMs: concMs,
    pooledConcurrentPerSec: N / (concMs / 1000),
    // connections opened during the concurrent phase, beyond the one already open
    pooledConcurrentConnectionsOpened: concStats.connectionsOpened - pooledStats.connectionsOpened,
    pooledConcurrentChannelRetries: concStats.channelRetries - pooledStats.channelRetries,
    pooledConcurrentPeakChannelsPerConnection: concStats.peakChannelsPerConnection,
    newConnMeasuredCommands: NEW_N,
    newConnMeasuredTotalMs: fresh.totalMs,
    newConnPerSec: fresh.perSec,
    newConnP50Ms: fresh.p50Ms,
    newConnP99Ms: fresh.p99Ms,
    newConnTotalMsExtrapolated: freshExtrapolatedMs,
    newConnExtrapolated: NEW_N < N,
    newConnConcurrentMeasuredTotalMs: freshConcMs,
    newConnConcurrentPerSec: NEW_N / (freshConcMs / 1000),
    newConnConcurrentTotalMsExtrapolated: freshConcExtrapolatedMs,
    // like for like: both sequential, both CONCURRENCY in flight
    speedupPooledVsNewConn: speedup,
    speedupConcurrentVsNewConnConcurrent: freshConcExtrapolatedMs / concMs,
    // the old figure, unlike for unlike: pooled CONCURRENCY in flight vs sequential new connections
    speedupConcurrentVsNewConnSequential: freshExtrapolatedMs / concMs,
    ...sftp,
    loadAvg1mStart: loadStart,
    loadAvg1mEnd: loadavg()[0]!,
  });
}

await main();
