// pnpm bench chaos: the chaos test (test/chaos) for longer. Episodes of an edit storm through
// the fswatcher while services and nats-server are killed -9 (two services down at once,
// nats-server down longer than MajorDomo's chef timeout), each followed by a restart of
// everything, a settle and a byte-for-byte comparison with a from-scratch build; at the end the
// lost and duplicated completions of the whole run (see ChaosRun.finish for what each means).
// CP_CHAOS_MINUTES (default 5) bounds the storm time; CP_CHAOS_SEED replays a schedule.
import { ChaosRun, type EpisodeKind, prng } from '../../test/chaos/chaos.js';
import { finish, percentile, table } from '../lib/report.js';

const minutes = Number(process.env.CP_CHAOS_MINUTES ?? 5);
const seed = Number(process.env.CP_CHAOS_SEED ?? Math.floor(Math.random() * 2 ** 31));
console.log(`chaos seed ${seed} (CP_CHAOS_SEED=${seed} replays it), ${minutes} min`);

const started = Date.now();
const run = await ChaosRun.start({ seed, log: (l) => console.log(`  ${l}`) });
const pick = prng(seed ^ 0x5eed);
const kinds: EpisodeKind[] = ['pair', 'nats', 'mixed'];
let failure: Error | undefined;
try {
  // Every kind once, then drawn; an episode is not started once the time is up.
  for (let i = 0; Date.now() - started < minutes * 60_000; i++) {
    const kind = i < kinds.length ? kinds[i]! : kinds[Math.floor(pick() * kinds.length)]!;
    await run.episode(kind);
  }
} catch (err) {
  // A settle that never came is a finding: reported, with the counts so far.
  failure = err as Error;
  console.error(failure.message);
}
const report = await run.finish();
await run[Symbol.asyncDispose]();

const settle = report.episodes.map((e) => e.settleMs).sort((a, b) => a - b);
table(
  `chaos: ${report.episodes.length} episodes in ${((Date.now() - started) / 60_000).toFixed(1)} min (seed ${seed})`,
  ['figure', 'value'],
  [
    ['edits', report.edits],
    ...Object.entries(report.kills).map(([s, n]) => [`kill -9 ${s}`, n] as [string, number]),
    ['NATS outages (kill -9, past the chef timeout)', report.natsOutages],
    ['commands run to their end (ledger)', report.executions],
    ['  of which again on the same inputs (not all duplicates)', report.reruns.length],
    ['succeeded build results', report.succeededResults],
    ['settle after the last fault p50 (ms)', percentile(settle, 50)],
    ['settle after the last fault max (ms)', settle.at(-1) ?? Number.NaN],
    ['lost completions', report.lost.length],
    ['duplicated completions', report.duplicated.length],
    ['byte mismatches', report.mismatches.length],
    ['episodes that never settled', failure ? 1 : 0],
  ],
);
for (const line of [...report.lost, ...report.duplicated, ...report.mismatches])
  console.log(`  ${line}`);
for (const line of report.reruns) console.log(`  run again: ${line}`);
const figures: Record<string, number | string | boolean> = {
  seed,
  minutes,
  episodes: report.episodes.length,
  edits: report.edits,
  nats_outages: report.natsOutages,
  executions: report.executions,
  reruns_same_inputs: report.reruns.length,
  builds_succeeded: report.succeededResults,
  settle_p50_ms: percentile(settle, 50),
  settle_max_ms: settle.at(-1) ?? Number.NaN,
  lost: report.lost.length,
  duplicated: report.duplicated.length,
  byte_mismatches: report.mismatches.length,
  never_settled: failure ? 1 : 0,
};
for (const [s, n] of Object.entries(report.kills)) figures[`kills_${s}`] = n;
finish('chaos', figures);
process.exit(failure || report.lost.length || report.duplicated.length ? 1 : 0);
