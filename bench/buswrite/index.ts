// pnpm bench buswrite: the client CPU of a build result put in the builds bucket and published
// as build.result (what the chef does per build), validated by each write (the peer: how the bus
// did it before Bus.checked) against validated once by Bus.checked and taken as it is by both.
// Same nats-server, same process, rounds alternating; CPU is this process's (process.cpuUsage).
import { loadavg } from 'node:os';
import { Bus, createLogger, ensureProjectStreams } from '@computepods/bus';
import { BuildResult } from '@computepods/protocol';
import { NatsServer } from '@computepods/testkit';
import type { z } from 'zod';
import { finish, table } from '../lib/report.js';

const P = 'buswrite';
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const N = Number(process.env.BENCH_N ?? 2_000);
const OUTPUTS = 4;

function result(i: number): z.input<typeof BuildResult> {
  const outputs: Record<string, { sha256: string; size: number; mtimeNs: string }> = {};
  const cutoff: Record<string, string> = {};
  for (let o = 0; o < OUTPUTS; o++) {
    const path = `build/obj/dir${i % 17}/file${i}-${o}.o`;
    outputs[path] = { sha256: 'a'.repeat(64), size: 1000 + o, mtimeNs: '1700000000000000000' };
    cutoff[path] = 'b'.repeat(64);
  }
  return {
    buildId: `b${i.toString(16).padStart(12, '0')}`,
    taskId: `rule-cc-${i}`,
    chef: 'chef-1',
    pod: 'pod-a',
    status: 'succeeded',
    outputs,
    cutoff,
    discovered: [`src/dir${i % 17}/file${i}.c`, 'include/common.h'],
    durationMs: 12,
  };
}

async function main(): Promise<void> {
  const logger = createLogger('bench-buswrite');
  logger.level = 'warn';
  await using nats = await NatsServer.start();
  const bus = await Bus.connect({ servers: nats.url, service: 'bench', project: P, logger });
  await ensureProjectStreams(bus, P);
  const kv = await bus.kv(`cp_${P}_builds_bench`, BuildResult);
  const subject = `cp.${P}.build.result`;
  const inputs = Array.from({ length: N }, (_, i) => result(i));

  // One round: N put+publish pairs, 64 in flight; the CPU µs per pair of this process.
  const round = async (checked: boolean): Promise<number> => {
    const start = process.cpuUsage();
    for (let i = 0; i < N; i += 64) {
      const batch = inputs.slice(i, i + 64).map((input) => {
        const value = checked ? bus.checked('build.result', input) : input;
        return Promise.all([
          kv.put(value.buildId, value),
          bus.publish('build.result', subject, value),
        ]);
      });
      await Promise.all(batch);
    }
    const used = process.cpuUsage(start);
    return (used.user + used.system) / N;
  };
  await round(false);
  await round(true); // warm-up, both paths
  const twice: number[] = [];
  const once: number[] = [];
  const load: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    load.push(loadavg()[0] ?? Number.NaN);
    if (r % 2 === 0) {
      twice.push(await round(false));
      once.push(await round(true));
    } else {
      once.push(await round(true));
      twice.push(await round(false));
    }
  }
  await bus.close();
  const median = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    return s[Math.floor(s.length / 2)] ?? Number.NaN;
  };
  const twiceUs = median(twice);
  const onceUs = median(once);
  table(
    `put + publish of a BuildResult (${OUTPUTS} outputs), client CPU µs per pair, median of ${ROUNDS} rounds of ${N}`,
    ['path', 'median µs', 'rounds µs'],
    [
      ['validated by each write (before)', twiceUs, twice.map((x) => x.toFixed(1)).join(' ')],
      ['Bus.checked once', onceUs, once.map((x) => x.toFixed(1)).join(' ')],
    ],
  );
  console.log(`\nload average (1 min) at each round: ${load.map((l) => l.toFixed(2)).join(' ')}`);
  finish('buswrite', {
    rounds: ROUNDS,
    pairsPerRound: N,
    outputsPerResult: OUTPUTS,
    twiceCpuUsPerPair: twiceUs,
    onceCpuUsPerPair: onceUs,
    onceOverTwice: onceUs / twiceUs,
    savedCpuUsPerPair: twiceUs - onceUs,
    loadavg1mStart: load[0] ?? Number.NaN,
    loadavg1mEnd: loadavg()[0] ?? Number.NaN,
  });
}

await main();
