// pnpm bench soak: a long run of steady edits through the real services (nats-server, MajorDomo,
// chef, runner, fswatcher: one OS process each), checking that every edit's artefact comes up
// to date and that no process grows. The project: a two-step chain per text source
// (src/tN.txt → mid/tN.up → out/tN.quoted) and a cycle per document that converges in one or
// two passes, like a LaTeX .aux (doc/dN.seed + doc/dN.aux → doc/dN.out → doc/dN.aux).
// Every sample of every process's RSS (VmRSS) and open fds goes to a CSV.
//
// Goal: flat. After warm-up (the first 20 % of the run or 5 min, whichever is shorter), the
// median of the last 10 % of the run's samples is at most 10 % above the median of the first
// 10 % after warm-up, for RSS and for fds, in every process but nats-server. nats-server is
// judged by its fds and by its heap outside its filestore's block cache (natsHeapParts), and its
// block cache by a bound (2 blocks of 8 MiB per stream in use): its RSS follows that cache, which
// grows by whole blocks as streams fill and roll them, for longer than any warm-up here (the
// last 60-minute soak: all of nats-server's growth was the cache, 31 → 42 MiB, the rest flat).
//
// Settings: CP_SOAK_MINUTES (default 30), CP_SOAK_RATE edits/s (2), CP_SOAK_TEXTS (6) and
// CP_SOAK_DOCS (2) sources edited in turn, CP_SOAK_SAMPLE_S (the run / 120, within 2..10 s),
// CP_SOAK_OUT (a new temp dir) for samples.csv and edits.csv; CP_SOAK_HEAP=1 for heap snapshots
// of every service at the end of warm-up and at the end; nats-server serves Go's pprof (off with
// CP_SOAK_NATS_PROF=0): what its heap kept at its own last GC (half the runtime's NextGC) is
// sampled with RSS (no GC is forced: that would change what RSS shows) into nats-heap.csv and
// judged like the services' heap,
// and its profile, /varz and /jsz are saved at the end of warm-up and at the end,
// CP_SOAK_GC=1 to run every Node service with V8's --trace-gc (trace-gc.mjs) and report its heap after each full GC
// beside its RSS (gc.csv): retained objects grow the one, V8's and the allocator's sizing only
// the other.
//
// Retention: short, so that the history the project keeps reaches its steady state within the
// run (the defaults keep days of it, and nats-server's memory holds ~150 bytes per stored key or
// subject): task records and build results CP_RECORD_MAX_AGE_S=900 (the least allowed), file
// changes and build events CP_EVENT_MAX_AGE_S=300, task logs CP_TASK_LOG_MAX_AGE_S=300, unless
// set. The bench provisions the project, so its environment is what the streams and buckets get.
// What else nats-server (2.9.10) holds as it runs, measured apart by nats-memory.ts: the whole
// last block of every stream read as it is written (a consumer, KV watch or get) stays in memory
// until the block is full (8 MB for a limits stream, 4 MB for a KV bucket or work queue), then
// drops. At 2 edits/s some blocks take more than 30 minutes to fill: its RSS settles only then.
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { retentionFromEnv } from '@computepods/bus';
import { Envelope, subjects } from '@computepods/protocol';
import { freePort } from '@computepods/testkit';
import { Stack } from '../../test/src/stack.js';
import { settled } from '../../test/src/watch-builds.js';
import { finish, percentile, round, table } from '../lib/report.js';
import {
  type Growth,
  growthOf,
  type HeapTrend,
  heapTrend,
  lastFullGc,
  natsHeapParts,
  probe,
  type Sample,
  windowsFor,
} from './growth.js';

const MINUTES = Number(process.env.CP_SOAK_MINUTES ?? 30);
const RATE = Number(process.env.CP_SOAK_RATE ?? 2);
const TEXTS = Number(process.env.CP_SOAK_TEXTS ?? 6);
const DOCS = Number(process.env.CP_SOAK_DOCS ?? 2);
const DURATION_S = MINUTES * 60;
const SAMPLE_S = Number(
  process.env.CP_SOAK_SAMPLE_S ?? Math.min(10, Math.max(2, Math.round(DURATION_S / 120))),
);
/** An edit whose artefact is not up to date this long after the save counts as missing. */
const DEADLINE_MS = 60_000;
const OUT = process.env.CP_SOAK_OUT ?? mkdtempSync(join(tmpdir(), 'cp-soak-'));
process.env.CP_RECORD_MAX_AGE_S ||= '900';
process.env.CP_EVENT_MAX_AGE_S ||= '300';
process.env.CP_TASK_LOG_MAX_AGE_S ||= '300';
const retention = retentionFromEnv();
/** Warm-up lasts at least this (CP_SOAK_SETTLE_S; default the record retention): see windowsFor. */
const SETTLE_S = Number(process.env.CP_SOAK_SETTLE_S ?? retention.recordMaxAgeMs / 1000);
const RETENTION = `records ${retention.recordMaxAgeMs / 1000} s, events ${retention.eventMaxAgeMs / 1000} s, task logs ${retention.taskLogMaxAgeMs / 1000} s`;
mkdirSync(OUT, { recursive: true });

const now = () => performance.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

// --- the project ---------------------------------------------------------------------------------
const definition = [
  'rules:',
  '  - id: upper',
  "    inputs: ['src/{stem}.txt']",
  "    outputs: ['mid/{stem}.up']",
  '    command: tr a-z A-Z < {in0} > {out0}',
  '  - id: quote',
  "    inputs: ['mid/{stem}.up']",
  "    outputs: ['out/{stem}.quoted']",
  "    command: sed 's/^/> /' {in0} > {out0}",
  // typeset and count feed each other: count's output stops changing once typeset has seen it.
  '  - id: typeset',
  "    inputs: ['doc/{stem}.seed']",
  "    optionalInputs: ['doc/{stem}.aux']",
  "    outputs: ['doc/{stem}.out']",
  '    command: \'(cat {in0}; echo "lines: $(cat doc/{stem}.aux 2>/dev/null || echo "?")") > {out0}\'',
  '  - id: count',
  "    inputs: ['doc/{stem}.out']",
  "    outputs: ['doc/{stem}.aux']",
  '    command: grep -c . {in0} > {out0}',
  '',
].join('\n');

interface Source {
  readonly path: string;
  /** The artefact at the end of its chain (or the cycle's document). */
  readonly target: string;
  /** The content of `target` once it is up to date with `text`. */
  readonly expect: (text: string) => string;
  readonly text: (n: number) => string;
}
const token = (n: number) => `edit ${n} ${Math.random().toString(36).slice(2, 10)}`;
const sources: Source[] = [
  ...Array.from({ length: TEXTS }, (_, i) => ({
    path: `src/t${i}.txt`,
    target: `out/t${i}.quoted`,
    text: (n: number) => `${token(n)}\nsecond line of t${i}\n`,
    expect: (text: string) =>
      text
        .toUpperCase()
        .split('\n')
        .slice(0, -1)
        .map((l) => `> ${l}\n`)
        .join(''),
  })),
  ...Array.from({ length: DOCS }, (_, i) => ({
    path: `doc/d${i}.seed`,
    target: `doc/d${i}.out`,
    // One to three lines, so the line count (the .aux) changes now and then: a second pass.
    text: (n: number) =>
      Array.from({ length: 1 + (Math.abs(n) % 3) }, (_, l) => `${l ? 'more' : token(n)}\n`).join(
        '',
      ),
    expect: (text: string) =>
      `${text}lines: ${text.split('\n').filter((l) => l !== '').length + 1}\n`,
  })),
];

// --- the stack -----------------------------------------------------------------------------------
// --- the stack -----------------------------------------------------------------------------------
// nats-server serves Go's pprof on a free port (unless CP_SOAK_NATS_PROF=0): its heap in use is
// sampled, and its heap profile (text) saved into OUT at the end of warm-up and at the end.
const profPort = process.env.CP_SOAK_NATS_PROF === '0' ? undefined : await freePort();
// With it, nats-server's monitoring port too: /varz (its memory) and /jsz (streams, consumers)
// are saved beside the profiles.
const monitorPort = profPort ? await freePort() : undefined;
const stack = await Stack.start('soak', {
  natsConfigLines: profPort ? [`prof_port: ${profPort}`, `http_port: ${monitorPort}`] : [],
});
let figures: Record<string, number | string | boolean>;
try {
  figures = await soak(stack);
} finally {
  // Also when the run throws: no service outlives the bench.
  await stack[Symbol.asyncDispose]();
}
finish('soak', figures);
process.exit(0);

async function soak(stack: Stack): Promise<Record<string, number | string | boolean>> {
  const defFile = stack.dir.join('soak.yaml');
  writeFileSync(defFile, definition);
  // CP_SOAK_HEAP=1: every Node service writes a heap snapshot into OUT at the end of warm-up and
  // at the end of the edits, to compare what grew (taking one perturbs that moment's samples).
  const heap = process.env.CP_SOAK_HEAP === '1';
  const gc = process.env.CP_SOAK_GC === '1';
  const nodeOptions = [
    process.env.NODE_OPTIONS ?? '',
    heap ? `--heapsnapshot-signal=SIGUSR2 --diagnostic-dir=${OUT}` : '',
    // node refuses --trace-gc in NODE_OPTIONS: a preload sets it.
    gc ? `--import=${fileURLToPath(new URL('./trace-gc.mjs', import.meta.url))}` : '',
  ]
    .filter(Boolean)
    .join(' ');
  const quiet = {
    CP_LOG_LEVEL: 'info',
    ...(heap || gc ? { NODE_OPTIONS: nodeOptions } : {}),
  };
  await Promise.all([
    stack.start('majordomo', quiet),
    stack.start('runner', quiet),
    stack.start('fswatcher', quiet),
    stack.start('chef', { ...quiet, CP_CHEF: 'soak', CP_CHEF_DEFINITION: defFile }),
  ]);

  // --- edits and their completions ----------------------------------------------------------------
  interface Edit {
    readonly n: number;
    readonly source: string;
    readonly target: string;
    readonly sha: string;
    readonly t0: number;
    /** Seconds since the edits began (negative for the initial build). */
    readonly at: number;
    lagMs?: number;
    superseded?: boolean;
  }
  const pending = new Map<string, Edit[]>();
  const edits: Edit[] = [];
  let begin = now();

  const sub = stack.bus.nc.subscribe(subjects.artefactState(stack.project), {
    callback: (_e, m) => {
      type Rec = { path?: string; status?: string; sha256?: string | null };
      let records: Rec[];
      try {
        const env = Envelope.parse(JSON.parse(new TextDecoder().decode(m.data)));
        records = (env.body as { records?: Rec[] }).records ?? [];
      } catch {
        return;
      }
      const t = now();
      // One turn's changes of MajorDomo, in order.
      for (const body of records) {
        if (body.status !== 'up_to_date' || !body.path) continue;
        const list = pending.get(body.path);
        const i = list?.findIndex((e) => e.sha === body.sha256) ?? -1;
        if (!list || i < 0) continue;
        // Up to date with this edit: the earlier ones to the same source were built over.
        for (const e of list.slice(0, i)) e.superseded = true;
        list[i]!.lagMs = t - list[i]!.t0;
        list.splice(0, i + 1);
      }
    },
  });

  function edit(n: number): void {
    const s = sources[(n + sources.length) % sources.length]!;
    const text = s.text(n);
    const t0 = now();
    const e: Edit = {
      n,
      source: s.path,
      target: s.target,
      sha: sha256(s.expect(text)),
      t0,
      at: (t0 - begin) / 1000,
    };
    edits.push(e);
    if (!pending.has(s.target)) pending.set(s.target, []);
    pending.get(s.target)!.push(e);
    stack.write(s.path, text);
  }

  const outstanding = () => [...pending.values()].reduce((a, l) => a + l.length, 0);
  async function drain(timeoutMs: number): Promise<void> {
    const end = Date.now() + timeoutMs;
    while (outstanding() > 0 && Date.now() < end) await sleep(100);
  }

  // Initial build of every source, not counted.
  for (let i = 0; i < sources.length; i++) edit(-sources.length + i);
  await drain(120_000);
  if (outstanding() > 0)
    throw new Error(`initial build did not complete in 120 s\n${stack.logs()}`);
  await settled(
    stack.bus,
    () => true,
    60_000,
    () => stack.logs(),
  );
  const initial = edits.length;
  const jsBefore = await jetstreamState(stack);

  // --- sampling ------------------------------------------------------------------------------------
  const procs = (): Array<[string, number | undefined]> => [
    ['nats-server', stack.nats.pid],
    ...[...stack.procs].map(([name, p]): [string, number | undefined] => [name, p.pid]),
  ];
  const samples: Sample[] = [];
  /** With CP_SOAK_GC: each service's heap after each full GC seen in its output. */
  const fullGcs: Array<{ t: number; proc: string; kb: number }> = [];
  const lastGcAt = new Map<string, number>();
  const natsHeap: NatsHeapSample[] = [];
  function sampleAll(): void {
    const t = (now() - begin) / 1000;
    for (const [proc, pid] of procs()) {
      const p = pid === undefined ? undefined : probe(pid);
      if (p && pid !== undefined) samples.push({ t, proc, pid, ...p });
    }
    if (profPort)
      void natsHeapSample(profPort, t).then((h) => {
        if (h) natsHeap.push(h);
      });
    if (!gc) return;
    for (const [proc, mp] of stack.procs) {
      const g = lastFullGc(mp.output);
      if (!g || lastGcAt.get(proc) === g.atMs) continue;
      lastGcAt.set(proc, g.atMs);
      fullGcs.push({ t, proc, kb: g.afterKb });
    }
  }

  // --- the soak ------------------------------------------------------------------------------------
  console.log(
    `soak: ${MINUTES} min, ${RATE} edits/s over ${sources.length} sources, a sample every ${SAMPLE_S} s; output in ${OUT}\n` +
      `retention (short, for the bench: CP_RECORD_MAX_AGE_S, CP_EVENT_MAX_AGE_S, CP_TASK_LOG_MAX_AGE_S): ${RETENTION}`,
  );
  begin = now();
  const loadStart = loadavg()[0]!;
  sampleAll();
  const sampler = setInterval(sampleAll, SAMPLE_S * 1000);
  let lastReport = 0;
  let warmSnapshot = !heap && !profPort;
  for (let n = 0; ; n++) {
    const due = begin + (n / RATE) * 1000;
    if (due - begin >= DURATION_S * 1000) break;
    const wait = due - now();
    if (wait > 0) await sleep(wait);
    edit(n);
    if (!warmSnapshot && now() - begin >= windowsFor(DURATION_S, SETTLE_S).warmupS * 1000) {
      warmSnapshot = true;
      if (heap) void snapshots(stack, OUT);
      if (profPort) void natsProfile(profPort, monitorPort, OUT, 'warm');
    }
    const minute = Math.floor((now() - begin) / 60_000);
    if (minute > lastReport) {
      lastReport = minute;
      const recent = edits.filter((e) => e.lagMs !== undefined && e.at >= (minute - 1) * 60);
      const lags = recent.map((e) => e.lagMs!).sort((a, b) => a - b);
      const mem = procs()
        .map(([name, pid]) => `${name} ${round((probe(pid ?? -1)?.rssKb ?? Number.NaN) / 1024, 1)}`)
        .join(', ');
      const live = natsHeap.at(-1);
      console.log(
        `  ${minute} min: ${n + 1} edits, ${outstanding()} outstanding, lag p50 ${round(percentile(lags, 50), 0)} ms p99 ${round(percentile(lags, 99), 0)} ms; RSS MiB: ${mem}${live === undefined ? '' : `; nats-server heap kept at last GC ${round(live.kb / 1024, 1)} MiB (block cache ${round(live.blockCacheKb / 1024, 1)}, the rest ${round(live.otherKb / 1024, 1)})`}`,
      );
    }
  }
  const editsEnd = now();
  const loadEnd = loadavg()[0]!;
  sampleAll();
  clearInterval(sampler);
  if (heap) await snapshots(stack, OUT);
  if (profPort) await natsProfile(profPort, monitorPort, OUT, 'end');
  await drain(DEADLINE_MS);
  const jsAfter = await jetstreamState(stack);
  sub.unsubscribe();

  // Every process still up (a crash would also show as a gap in the samples)?
  const died = [...stack.procs].filter(([, p]) => !p.running).map(([name]) => name);
  if (!stack.nats.running) died.push('nats-server');

  // What is on disk agrees with the last edit of every source.
  let diskMismatch = 0;
  for (const s of sources) {
    const last = edits.findLast((e) => e.source === s.path)!;
    const onDisk = (() => {
      try {
        return sha256(readFileSync(join(stack.workspace, s.target), 'utf8'));
      } catch {
        return '';
      }
    })();
    if (onDisk !== last.sha) diskMismatch++;
  }

  // --- results -------------------------------------------------------------------------------------
  const counted = edits.slice(initial);
  const completed = counted.filter((e) => e.lagMs !== undefined);
  const superseded = counted.filter((e) => e.lagMs === undefined && e.superseded);
  const missing = counted.filter((e) => e.lagMs === undefined && !e.superseded);
  const late = completed.filter((e) => e.lagMs! > DEADLINE_MS);
  const lags = completed.map((e) => e.lagMs!).sort((a, b) => a - b);
  const elapsedS = (editsEnd - begin) / 1000;

  writeFileSync(
    join(OUT, 'samples.csv'),
    `t_s,process,pid,rss_kb,fds\n${samples.map((s) => `${round(s.t, 2)},${s.proc},${s.pid},${s.rssKb},${s.fds}`).join('\n')}\n`,
  );
  if (natsHeap.length)
    writeFileSync(
      join(OUT, 'nats-heap.csv'),
      `t_s,heap_in_use_kb,block_cache_kb,other_kb\n${natsHeap.map((h) => `${round(h.t, 1)},${h.kb},${h.blockCacheKb},${h.otherKb}`).join('\n')}\n`,
    );
  if (gc)
    writeFileSync(
      join(OUT, 'gc.csv'),
      `t_s,process,heap_after_full_gc_kb\n${fullGcs.map((g) => `${round(g.t, 2)},${g.proc},${g.kb}`).join('\n')}\n`,
    );
  writeFileSync(
    join(OUT, 'edits.csv'),
    `n,at_s,source,target,lag_ms,superseded\n${counted.map((e) => `${e.n},${round(e.at, 3)},${e.source},${e.target},${e.lagMs === undefined ? '' : round(e.lagMs, 1)},${e.superseded ?? false}`).join('\n')}\n`,
  );

  const windows = windowsFor(elapsedS, SETTLE_S);
  // nats-server's heap outside its block cache: what a leak would grow (see natsHeapParts).
  const natsOther = natsHeap.length
    ? heapTrend(
        natsHeap.map((h) => ({ t: h.t, kb: h.otherKb })),
        windows,
      )
    : undefined;
  const natsBlocks = natsHeap.length
    ? heapTrend(
        natsHeap.map((h) => ({ t: h.t, kb: h.blockCacheKb })),
        windows,
      )
    : undefined;
  // The block cache's bound: two blocks of the largest size (8 MiB) per stream that holds
  // messages (the block a stream writes, and the one a reader or max-age expiry loaded).
  const streamsInUse = [...jsAfter.values()].filter((a) => a.msgs > 0).length;
  const blockCacheBoundKb = streamsInUse * 2 * 8 * 1024;
  const growth: Growth[] = procs().map(([name]) => {
    const g = growthOf(name, samples, windows);
    // nats-server is judged by its fds and its heap outside the block cache, and its block cache
    // by its bound: its RSS follows the cache (twice it, at Go's default GOGC), which grows
    // by whole blocks as streams fill and roll them (the figures say how much).
    if (name !== 'nats-server' || !natsOther || !natsBlocks) return g;
    const goalMet =
      g.fdsGrowthPct <= 10 && natsOther.growthPct <= 10 && natsBlocks.endKb <= blockCacheBoundKb;
    return { ...g, goalMet };
  });
  const goalMet =
    growth.every((g) => g.goalMet) &&
    missing.length === 0 &&
    died.length === 0 &&
    diskMismatch === 0;

  table(
    `edits (${round(elapsedS / 60, 1)} min at ${RATE}/s over ${sources.length} sources; lag = save → artefact.states up_to_date with the edit's bytes)`,
    ['edits', 'completed', 'superseded', 'missing', 'late >60 s', 'p50 ms', 'p99 ms', 'max ms'],
    [
      [
        String(counted.length),
        completed.length,
        superseded.length,
        missing.length,
        late.length,
        percentile(lags, 50),
        percentile(lags, 99),
        lags[lags.length - 1] ?? Number.NaN,
      ],
    ],
  );
  table(
    `memory and fds per process (warm-up ${round(windows.warmupS, 0)} s; start = median of [${round(windows.warmupS, 0)}, ${round(windows.warmupS + windows.windowS, 0)}) s, end = median of the last ${round(windows.windowS, 0)} s; goal ≤ 10 % growth)`,
    [
      'process',
      'samples',
      'RSS start MiB',
      'RSS end MiB',
      'RSS growth %',
      'RSS slope KiB/min',
      '2nd half',
      'fds start',
      'fds end',
      'fds growth',
      'goal met',
    ],
    growth.map((g) => [
      g.proc,
      g.samples,
      g.rssStartKb / 1024,
      g.rssEndKb / 1024,
      g.rssGrowthPct,
      g.rssSlopeKbPerMin,
      g.rssLateSlopeKbPerMin,
      g.fdsStart,
      g.fdsEnd,
      g.fdsGrowth,
      g.goalMet ? 'yes' : 'NO',
    ]),
  );
  const heapTrends: Array<[string, HeapTrend]> = [
    ...(gc
      ? [...stack.procs.keys()].map((name): [string, HeapTrend] => [
          name,
          heapTrend(
            fullGcs.filter((g) => g.proc === name),
            windows,
          ),
        ])
      : []),
    ...(natsHeap.length
      ? ([
          ['nats-server', heapTrend(natsHeap, windows)],
          ['nats-server block cache', natsBlocks],
          ['nats-server outside block cache', natsOther],
        ] as Array<[string, HeapTrend]>)
      : []),
  ];
  if (heapTrends.length)
    table(
      `heap retained (same windows as RSS): V8 after each full GC (--trace-gc), nats-server kept at its last GC (NextGC / 2, pprof), split into its filestore block cache (bound: ${streamsInUse} streams × 2 × 8 MiB = ${blockCacheBoundKb / 1024} MiB) and the rest (profile, scaled: judged ≤ 10 % growth)`,
      ['process', 'full GCs', 'start MiB', 'end MiB', 'growth %', '2nd half KiB/min'],
      heapTrends.map(([name, h]) => [
        name,
        h.samples,
        h.startKb / 1024,
        h.endKb / 1024,
        h.growthPct,
        h.lateSlopeKbPerMin,
      ]),
    );
  // What the server holds (it grows by design where retention keeps history: files, events).
  table(
    'JetStream streams (KV buckets are KV_*): messages and bytes after the initial build and at the end',
    ['stream', 'msgs before', 'msgs after', 'bytes before', 'bytes after', 'subjects after'],
    [...jsAfter].map(([name, a]) => {
      const b = jsBefore.get(name);
      return [name, b?.msgs ?? 0, a.msgs, b?.bytes ?? 0, a.bytes, a.subjects];
    }),
  );
  console.log(`\nsamples: ${join(OUT, 'samples.csv')}\nedits:   ${join(OUT, 'edits.csv')}`);
  console.log(`load average (1 min) at start ${round(loadStart, 2)}, at end ${round(loadEnd, 2)}`);
  if (died.length) console.log(`processes that died: ${died.join(', ')}`);
  if (diskMismatch)
    console.log(`sources whose artefact on disk is not their last edit's: ${diskMismatch}`);

  const figures: Record<string, number | string | boolean> = {
    minutes: round(elapsedS / 60, 2),
    rate_per_s: RATE,
    retention: `short, for the bench: ${RETENTION}`,
    sources: sources.length,
    sample_s: SAMPLE_S,
    warmup_s: windows.warmupS,
    settle_s: SETTLE_S,
    window_s: windows.windowS,
    edits: counted.length,
    completed: completed.length,
    superseded: superseded.length,
    missing: missing.length,
    late_over_60s: late.length,
    lag_p50_ms: percentile(lags, 50),
    lag_p99_ms: percentile(lags, 99),
    lag_max_ms: lags[lags.length - 1] ?? Number.NaN,
    disk_mismatch: diskMismatch,
    died: died.join(',') || 'none',
    loadavg_1m_start: loadStart,
    loadavg_1m_end: loadEnd,
  };
  for (const g of growth) {
    const k = g.proc.replace(/[^A-Za-z0-9]/g, '_');
    Object.assign(figures, {
      [`${k}_rss_start_kb`]: g.rssStartKb,
      [`${k}_rss_end_kb`]: g.rssEndKb,
      [`${k}_rss_growth_pct`]: g.rssGrowthPct,
      [`${k}_rss_slope_kb_per_min`]: g.rssSlopeKbPerMin,
      [`${k}_rss_slope_2nd_half_kb_per_min`]: g.rssLateSlopeKbPerMin,
      [`${k}_fds_start`]: g.fdsStart,
      [`${k}_fds_end`]: g.fdsEnd,
      [`${k}_fds_growth`]: g.fdsGrowth,
      [`${k}_goal_met`]: g.goalMet,
    });
  }
  for (const [name, h] of heapTrends) {
    const k = name.replace(/[^A-Za-z0-9]/g, '_');
    Object.assign(figures, {
      [`${k}_heap_after_gc_start_kb`]: h.startKb,
      [`${k}_heap_after_gc_end_kb`]: h.endKb,
      [`${k}_heap_after_gc_growth_pct`]: h.growthPct,
      [`${k}_heap_after_gc_slope_2nd_half_kb_per_min`]: h.lateSlopeKbPerMin,
      [k.startsWith('nats_server') ? `${k}_heap_samples` : `${k}_full_gcs`]: h.samples,
    });
  }
  for (const [name, a] of jsAfter) {
    const k = name.replace(/[^A-Za-z0-9]/g, '_');
    figures[`js_${k}_msgs`] = a.msgs;
    figures[`js_${k}_bytes`] = a.bytes;
  }
  if (natsBlocks) figures.nats_server_block_cache_bound_kb = blockCacheBoundKb;
  figures.samples_csv = join(OUT, 'samples.csv');
  figures.goal_met = goalMet;

  return figures;
}

/** Messages, bytes and distinct subjects of every stream of the project's account. */
async function jetstreamState(
  stack: Stack,
): Promise<Map<string, { msgs: number; bytes: number; subjects: number }>> {
  const out = new Map<string, { msgs: number; bytes: number; subjects: number }>();
  for await (const si of stack.bus.jsm.streams.list())
    out.set(si.config.name, {
      msgs: si.state.messages,
      bytes: si.state.bytes,
      subjects: si.state.num_subjects ?? 0,
    });
  return out;
}

/** SIGUSR2 to every service (started with --heapsnapshot-signal); waits for their snapshots. */
async function snapshots(stack: Stack, dir: string): Promise<void> {
  const count = () => readdirSync(dir).filter((f) => f.endsWith('.heapsnapshot')).length;
  const want = count() + stack.procs.size;
  for (const p of stack.procs.values()) p.signal('SIGUSR2');
  const end = Date.now() + 120_000;
  while (count() < want && Date.now() < end) await sleep(500);
  console.log(`  heap snapshots in ${dir}: ${count()}`);
}

interface NatsHeapSample {
  readonly t: number;
  /** What its Go heap kept at its last GC: half the heap goal the runtime set then. */
  readonly kb: number;
  readonly blockCacheKb: number;
  readonly otherKb: number;
}

/**
 * nats-server's heap at time T (KiB), from its pprof heap profile. `kb`: half the heap goal the
 * runtime set at its last GC (NextGC, from the MemStats the profile prints). With GOGC at its
 * default of 100 the goal is twice what the GC found live (plus the goroutine stacks), and the
 * heap grows up to it before the next GC: RSS follows that sawtooth, this does not. The rest:
 * natsHeapParts. No GC is forced (that changes what RSS shows).
 */
async function natsHeapSample(port: number, t: number): Promise<NatsHeapSample | undefined> {
  try {
    const text = await (await fetch(`http://127.0.0.1:${port}/debug/pprof/heap?debug=1`)).text();
    const m = /^# NextGC = (\d+)$/m.exec(text);
    const parts = natsHeapParts(text);
    return m && parts ? { t, kb: Math.round(Number(m[1]) / 2 / 1024), ...parts } : undefined;
  } catch {
    return undefined;
  }
}

/**
 * nats-server's Go heap profile (in-use, with stacks, as text) into DIR/nats-heap-LABEL.txt, and
 * its /varz and /jsz (every account's streams and consumers) into DIR/nats-{varz,jsz}-LABEL.json.
 */
async function natsProfile(
  port: number,
  monitor: number | undefined,
  dir: string,
  label: string,
): Promise<void> {
  const save = async (url: string, file: string) => {
    try {
      const res = await fetch(url);
      writeFileSync(join(dir, file), await res.text());
      console.log(`  nats-server ${file}: ${join(dir, file)}`);
    } catch (err) {
      console.log(`  nats-server ${file} failed: ${(err as Error).message}`);
    }
  };
  await save(`http://127.0.0.1:${port}/debug/pprof/heap?debug=1`, `nats-heap-${label}.txt`);
  if (monitor === undefined) return;
  await save(`http://127.0.0.1:${monitor}/varz`, `nats-varz-${label}.json`);
  await save(
    `http://127.0.0.1:${monitor}/jsz?accounts=true&streams=true&consumers=true&config=true`,
    `nats-jsz-${label}.json`,
  );
}
