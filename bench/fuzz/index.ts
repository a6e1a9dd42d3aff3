// pnpm bench fuzz: hostile input against a real stack (nats-server + MajorDomo, a chef, a runner
// and an fswatcher, each its own OS process with its role's credentials), with the generators of
// the fuzz tests (test/fuzz/arbitraries.ts) over every target: the subjects each service
// consumes, the buckets each reads, the REST routes, the watched workspace. Every input is
// judged as the tests judge it (dead-lettered, answered with an error, answered, accepted,
// ignored, unanswered; a problem when a property breaks), the services are checked alive, a
// sentinel ping through each service's input path runs every second (a stall: one over 1 s),
// and at the end a source edit must still be built, after a MajorDomo restart too.
// Sizes: CP_FUZZ_INPUTS (default 100,000), CP_FUZZ_SEED, CP_FUZZ_WINDOW (inputs in flight per
// target, default 8).

import { availableParallelism, loadavg } from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import {
  describeInput,
  type FuzzInput,
  sample,
  TARGET_NAMES,
  type Target,
  targets,
} from '../../test/fuzz/arbitraries.js';
import { FuzzRig, type Outcome, type OutcomeClass } from '../../test/fuzz/rig.js';
import { finish, percentile, table } from '../lib/report.js';

const INPUTS = Number(process.env.CP_FUZZ_INPUTS ?? 100_000);
const SEED = Number(process.env.CP_FUZZ_SEED ?? 20261203);
const WINDOW = Number(process.env.CP_FUZZ_WINDOW ?? 8);
const STALL_MS = 1_000;
/** Files are dearer (a write, a hash, a batch through MajorDomo): fewer of them. */
const WEIGHT: Partial<Record<(typeof TARGET_NAMES)[number], number>> = {
  fs: 0.25,
  // Each waits out MajorDomo's gathering deadline (0.5 s).
  'how-to-build.answer': 0.1,
};

const CLASSES: OutcomeClass[] = [
  'dead-lettered',
  'answered-error',
  'answered-ok',
  'accepted',
  'ignored',
  'unanswered',
];
interface Tally {
  inputs: number;
  invalid: number;
  problems: number;
  classes: Record<OutcomeClass, number>;
  ms: number[];
}

// The machine is shared: its load says how much of a ping's latency is the services' own.
const loadStart = loadavg()[0]!;
const rig = await FuzzRig.start({ project: 'fuzzbench', answerMs: 30_000 });
// Whatever happens, the stack's processes are stopped (an exception used to leave them running).
let exitCode = 1;
try {
  exitCode = await run();
} catch (err) {
  console.error('fuzz bench failed:', err);
} finally {
  await rig[Symbol.asyncDispose]();
}
process.exit(exitCode);

async function run(): Promise<number> {
  const started = performance.now();
  // The fuzzer's own event loop: a ping late because this process was busy is not the services'.
  const loopDelay = monitorEventLoopDelay({ resolution: 20 });
  loopDelay.enable();
  const tallies = new Map<string, Tally>();
  const problems: string[] = [];
  /** Problems by target and kind (the message up to its first colon, digits elided). */
  const problemKinds = new Map<string, number>();
  const pings: Record<string, number[]> = {};
  /** Per JetStream path: stalls whose ping had messages queued ahead of it, the most queued. */
  const stallsQueued: Record<string, number> = {};
  const backlogMax: Record<string, number> = {};
  const crashes = new Set<string>();
  let stop = false;

  try {
    await rig.sentinel('before');
    const all = targets(rig.ctx);
    const weightSum = all.reduce((s, t) => s + (WEIGHT[t.name as keyof typeof WEIGHT] ?? 1), 0);
    const quota = (name: string) =>
      Math.round((INPUTS * (WEIGHT[name as keyof typeof WEIGHT] ?? 1)) / weightSum);

    const pinger = (async () => {
      while (!stop) {
        const t0 = performance.now();
        const queued = await rig.backlog().catch((): Record<string, number> => ({}));
        const r = await rig.ping(30_000);
        for (const [k, v] of Object.entries(r)) {
          const list = pings[k] ?? [];
          list.push(v);
          pings[k] = list;
          const q = queued[k];
          if (q !== undefined) backlogMax[k] = Math.max(backlogMax[k] ?? 0, q);
          // A stall behind messages its consumer had not finished: queued, the path not stuck.
          if (v > STALL_MS && q !== undefined && q > 0)
            stallsQueued[k] = (stallsQueued[k] ?? 0) + 1;
        }
        for (const d of rig.dead()) crashes.add(d);
        await new Promise((res) => setTimeout(res, Math.max(0, 1_000 - (performance.now() - t0))));
      }
    })();

    const worker = async (index: number, name: string, arb: Target['arb']) => {
      const tally: Tally = {
        inputs: 0,
        invalid: 0,
        problems: 0,
        classes: Object.fromEntries(CLASSES.map((c) => [c, 0])) as Record<OutcomeClass, number>,
        ms: [],
      };
      tallies.set(name, tally);
      const n = quota(name);
      let chunk = 0;
      let queue: FuzzInput[] = [];
      const next = (): FuzzInput => {
        if (queue.length === 0) queue = sample(arb, SEED + index * 1_000_003 + chunk++, 64);
        return queue.pop()!;
      };
      const record = (input: FuzzInput, o: Outcome) => {
        tally.inputs++;
        if (o.invalid) tally.invalid++;
        tally.classes[o.outcome]++;
        tally.ms.push(o.ms);
        if (o.problem) {
          tally.problems++;
          const kind = `${name}: ${o.problem.split(':')[0]!.replace(/\d+/g, 'N').slice(0, 100)}`;
          problemKinds.set(kind, (problemKinds.get(kind) ?? 0) + 1);
          // A few of each kind (the first 30 of a long run are all of one early kind).
          if (problems.length < 60 && problemKinds.get(kind)! <= 3)
            problems.push(`${name}: ${o.problem}\n    ${describeInput(input).slice(0, 400)}`);
        }
      };
      let sent = 0;
      const lanes = Array.from({ length: WINDOW }, async () => {
        while (sent < n && crashes.size === 0) {
          sent++;
          const input = next();
          const t0 = performance.now();
          const outcome = await rig.send(input).catch(
            (err: Error): Outcome => ({
              target: name,
              outcome: 'unanswered',
              invalid: false,
              problem: `the fuzzer itself failed: ${err.message}`,
              ms: performance.now() - t0,
            }),
          );
          record(input, outcome);
        }
      });
      await Promise.all(lanes);
    };

    await Promise.all(all.map((t, i) => worker(i, t.name, t.arb)));
    stop = true;
    await pinger;
  } finally {
    stop = true;
  }

  const fuzzSeconds = (performance.now() - started) / 1000;
  // A dead letter given up on after 30 s may still come (a stalled consumer): wait for the
  // stragglers, so what is reported dropped is dropped.
  for (let waited = 0; rig.overdue > 0 && waited < 60_000; waited += 500)
    await new Promise((r) => setTimeout(r, 500));
  for (const d of rig.dead()) crashes.add(d);
  // The system still builds: a new source, then the same after a MajorDomo restart over every
  // fuzzed bucket.
  let buildsAfter = crashes.size === 0;
  let buildError = '';
  if (buildsAfter) {
    try {
      await rig.sentinel('after');
      await rig.restartMajorDomo();
      await rig.sentinel('restarted');
    } catch (err) {
      buildsAfter = false;
      buildError = (err as Error).message.slice(0, 2000);
    }
  }
  for (const d of rig.dead()) crashes.add(d);
  const durationS = (performance.now() - started) / 1000;

  const sum = (f: (t: Tally) => number) => [...tallies.values()].reduce((s, t) => s + f(t), 0);
  const figures: Record<string, number | string | boolean> = {};
  const rows = TARGET_NAMES.filter((n) => tallies.has(n)).map((name) => {
    const t = tallies.get(name)!;
    const sorted = [...t.ms].sort((a, b) => a - b);
    const validLettered = rig.validDeadLettered.get(name) ?? 0;
    figures[`inputs.${name}`] = t.inputs;
    figures[`invalid.${name}`] = t.invalid;
    for (const c of CLASSES) figures[`${c}.${name}`] = t.classes[c];
    figures[`valid_dead_lettered.${name}`] = validLettered;
    figures[`problems.${name}`] = t.problems;
    figures[`p99_ms.${name}`] = percentile(sorted, 99);
    return [
      name,
      t.inputs,
      t.invalid,
      t.classes['dead-lettered'] + validLettered,
      t.classes['answered-error'],
      t.classes['answered-ok'],
      t.classes.accepted,
      t.classes.ignored,
      t.classes.unanswered,
      t.problems,
      percentile(sorted, 50),
      percentile(sorted, 99),
      sorted[sorted.length - 1] ?? Number.NaN,
    ];
  });
  table(
    `Fuzzing ${sum((t) => t.inputs)} inputs (seed ${SEED}, ${WINDOW} in flight per target) in ${fuzzSeconds.toFixed(1)} s`,
    [
      'target',
      'inputs',
      'invalid',
      'dead-lettered',
      'answered err',
      'answered ok',
      'accepted',
      'ignored',
      'unanswered',
      'problems',
      'p50 ms',
      'p99 ms',
      'max ms',
    ],
    rows,
  );
  const pingRows = Object.entries(pings).map(([path, xs]) => {
    const s = [...xs].sort((a, b) => a - b);
    const stalls = xs.filter((x) => x > STALL_MS).length;
    figures[`stalls.${path}`] = stalls;
    if (path in backlogMax) {
      figures[`stalls_queued.${path}`] = stallsQueued[path] ?? 0;
      figures[`backlog_max.${path}`] = backlogMax[path]!;
    }
    figures[`ping_max_ms.${path}`] = Number.isFinite(s[s.length - 1]!) ? s[s.length - 1]! : -1;
    return [
      path,
      xs.length,
      stalls,
      path in backlogMax ? String(stallsQueued[path] ?? 0) : '-',
      path in backlogMax ? String(backlogMax[path]) : '-',
      percentile(s, 50),
      percentile(s, 99),
      s[s.length - 1] ?? Number.NaN,
    ];
  });
  table(
    `Sentinel pings through each input path, one a second (a stall: over ${STALL_MS} ms; queued: its JetStream consumer had unfinished messages ahead of it)`,
    ['path', 'pings', 'stalls', 'of them queued', 'max queued', 'p50 ms', 'p99 ms', 'max ms'],
    pingRows,
  );
  if (rig.validLetterReasons.size)
    console.log(
      `\nInputs the schemas accept, dead-lettered by a handler:\n  ${[...rig.validLetterReasons]
        .sort((a, b) => b[1] - a[1])
        .map(([why, n]) => `${n} × ${why}`)
        .join('\n  ')}`,
    );
  console.log(
    `\nDead letters waited for in vain (30 s) that came later: ${rig.lateLetters}; never came: ${rig.overdue}`,
  );
  if (rig.lateByTarget.size)
    console.log(`Late, by target: ${JSON.stringify(Object.fromEntries(rig.lateByTarget))}`);
  const never = rig.overdueByTarget();
  for (const [t, { n, samples }] of never)
    console.log(
      `Never came, ${t}: ${n}\n    ${samples.map((x) => JSON.stringify(x)).join('\n    ')}`,
    );
  if (problemKinds.size)
    console.log(
      `\nProblems by kind:\n  ${[...problemKinds]
        .sort((a, b) => b[1] - a[1])
        .map(([k, n]) => `${n} × ${k}`)
        .join('\n  ')}`,
    );
  if (problems.length)
    console.log(`\nProblems (first ${problems.length}):\n  ${problems.join('\n  ')}`);
  if (crashes.size) console.log(`\nServices down: ${[...crashes].join(', ')}\n${rig.logs(3000)}`);
  if (!buildsAfter) console.log(`\nThe system no longer builds: ${buildError}`);
  const stalls = pingRows.reduce((s, r) => s + (r[2] as number), 0);
  const inputs = sum((t) => t.inputs);
  const validLettered = [...rig.validDeadLettered.values()].reduce((a, b) => a + b, 0);
  finish('fuzz', {
    seed: SEED,
    window: WINDOW,
    inputs,
    targets: tallies.size,
    duration_s: durationS,
    fuzz_s: fuzzSeconds,
    inputs_per_s: inputs / fuzzSeconds,
    crashes: crashes.size,
    invalid: sum((t) => t.invalid),
    dead_lettered: sum((t) => t.classes['dead-lettered']) + validLettered,
    dead_lettered_valid: validLettered,
    answered_with_error: sum((t) => t.classes['answered-error']),
    answered_ok: sum((t) => t.classes['answered-ok']),
    accepted: sum((t) => t.classes.accepted),
    ignored: sum((t) => t.classes.ignored),
    unanswered: sum((t) => t.classes.unanswered),
    dead_letters_late: rig.lateLetters,
    dead_letters_never: rig.overdue,
    answers_after_deadline: rig.answersAfterDeadline,
    problems: sum((t) => t.problems),
    pings: Object.values(pings).reduce((s, xs) => s + xs.length, 0),
    stalls,
    stalls_queued: Object.values(stallsQueued).reduce((a, b) => a + b, 0),
    builds_after: buildsAfter,
    fuzzer_loop_delay_max_ms: loopDelay.max / 1e6,
    fuzzer_loop_delay_p99_ms: loopDelay.percentile(99) / 1e6,
    loadavg_1m_start: loadStart,
    loadavg_1m_end: loadavg()[0]!,
    cores: availableParallelism(),
    ...figures,
  });
  return crashes.size || !buildsAfter ? 1 : 0;
}
