// pnpm bench scale's restart alone, for comparing MajorDomo builds in one window: the generated
// project at CP_RESTARTS_SIZE artefacts (default 100000) seeded into one stack per bundle of
// CP_RESTARTS_BUNDLES (comma-separated paths of MajorDomo bundles, scripts/bundle.mjs, each
// maybe followed by `|` and node flags to start it with, from a copy of the bundle when another
// variant starts the same file with other flags; default: one built here from this
// tree's sources), each MajorDomo started once from every record (which
// stores its snapshot), then CP_RESTARTS_ROUNDS rounds (default 5) of a kill -9 and a start of
// each bundle in turn, spawn to "majordomo ready" as pnpm bench scale's restore_ms. With
// CP_RESTARTS_PROF=dir, a last round runs each bundle under --cpu-prof (CP_RESTARTS_PROF_KIND=heap:
// --heap-prof, what is allocated and still live), stopped (SIGTERM) once ready, its profile
// written to dir. With CP_RESTARTS_GC=1 every variant runs with --trace-gc-nvp and each start's
// collections before ready are summed (gc_*: counts, pauses, bytes promoted): unlike CPU time
// they hardly move with the machine's load, for comparing what two builds allocate and keep.
// Prints one JSON line per start and, last, the medians.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ManagedProcess, TempDir } from '@computepods/testkit';
import { Stack } from '../../test/src/stack.js';
import { bundleChild } from '../lib/bundle.js';
import { generate } from '../lib/graph-gen.js';
import { bundleCopy } from './bundle-copy.js';
import { seedProject } from './project.js';

const FULL = 100_000;
const SIZE = Number(process.env.CP_RESTARTS_SIZE ?? FULL);
const ROUNDS = Number(process.env.CP_RESTARTS_ROUNDS ?? 5);
const PROF = process.env.CP_RESTARTS_PROF;
const PROF_KIND = process.env.CP_RESTARTS_PROF_KIND === 'heap' ? 'heap' : 'cpu';
/** CP_RESTARTS_DUMP=dir: each restart's whole output written there (with --trace-gc, say). */
const DUMP = process.env.CP_RESTARTS_DUMP;
const GC = process.env.CP_RESTARTS_GC === '1';
const READY = /"msg":"majordomo ready"/;
const POD = 'pod-scale';
const ENV = { CP_LOG_LEVEL: 'info', CP_CHEF_TIMEOUT_MS: String(2 ** 31 - 1) };

const bundleDir = new TempDir('cp-restarts-bundle-');
const variants = process.env.CP_RESTARTS_BUNDLES
  ? process.env.CP_RESTARTS_BUNDLES.split(',').map((b) => b.trim())
  : [
      await bundleChild(
        new URL('../../services/majordomo/src/main.ts', import.meta.url),
        bundleDir.path,
        'majordomo',
      ),
    ];
/** Each variant's bundle and node flags. */
const bundles = variants.map((v) => {
  const [bundle = '', flags = ''] = v.split('|');
  const nodeFlags = flags.split(' ').filter(Boolean);
  if (GC) nodeFlags.push('--trace-gc-nvp');
  return { name: v, bundle: resolve(bundle), flags: nodeFlags };
});
// A variant of a bundle file another variant starts with other flags runs a copy of it (see
// bundleCopy: they would spoil each other's code cache).
for (const [i, b] of bundles.entries()) {
  const first = bundles.findIndex((a) => a.bundle === b.bundle);
  if (first < i && bundles[first]?.flags.join(' ') !== b.flags.join(' '))
    b.bundle = bundleCopy(b.bundle, bundleDir.join(`variant${i}`), b.flags);
}

/** The JSON log line with this msg, parsed. */
function line(proc: ManagedProcess, msg: string): Record<string, unknown> | undefined {
  const l = new RegExp(`\\{[^\\n]*"msg":"${msg}[^\\n]*\\}`).exec(proc.output)?.[0];
  return l ? (JSON.parse(l) as Record<string, unknown>) : undefined;
}

/** Starts `bundle` as startBundled does (node flags before it: `nodeArgs`), until ready. */
async function start(
  stack: Stack,
  bundle: string,
  nodeArgs: string[] = [],
): Promise<{ proc: ManagedProcess; ms: number; at: number }> {
  const env = stack.env('majordomo', ENV);
  env.NATS_CREDS = await stack.creds({ role: 'majordomo' });
  const at = Date.now();
  const t0 = performance.now();
  const proc = new ManagedProcess({
    name: 'majordomo',
    command: process.execPath,
    args: [...nodeArgs, bundle],
    env,
    cwd: fileURLToPath(new URL('../../', import.meta.url)),
  });
  stack.procs.set('majordomo', proc);
  await proc.waitForOutput(READY, 900_000);
  return { proc, ms: performance.now() - t0, at };
}

/** A process's resident set and its peak so far, MiB (/proc/PID/status). */
function memoryOf(pid: number | undefined): { rss_mib: number; hwm_mib: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const mib = (field: string) =>
    Math.round(Number(new RegExp(`^${field}:\\s+(\\d+)`, 'm').exec(status)?.[1]) / 1024);
  return { rss_mib: mib('VmRSS'), hwm_mib: mib('VmHWM') };
}

/**
 * The collections --trace-gc-nvp reported before `ready` (an index into `output`): scavenges and
 * full collections, their pauses, and the bytes scavenges promoted to the old generation or kept
 * in the young one (what the young generation copied).
 */
function gcFigures(output: string, ready: number): Record<string, number> {
  const sums = { scavenges: 0, full: 0, pause_ms: 0, promoted: 0, survived: 0 };
  for (const l of output.slice(0, ready).split('\n')) {
    const kind = / gc=(\w+)/.exec(l)?.[1];
    if (!kind) continue;
    const num = (key: string) => Number(new RegExp(` ${key}=([\\d.]+)`).exec(l)?.[1] ?? 0);
    sums.pause_ms += num('pause');
    if (kind === 's') {
      sums.scavenges++;
      sums.promoted += num('promoted');
      sums.survived += num('new_space_survived');
    } else sums.full++;
  }
  const mib = (b: number) => Math.round((b / 1048576) * 10) / 10;
  return {
    gc_scavenges: sums.scavenges,
    gc_full: sums.full,
    gc_pause_ms: Math.round(sums.pause_ms),
    gc_promoted_mib: mib(sums.promoted),
    gc_survived_mib: mib(sums.survived),
  };
}

/**
 * One start's figures: spawn to ready, MajorDomo's restore phases, spawn to its first log line,
 * its memory once ready.
 */
function figures(r: { proc: ManagedProcess; ms: number; at: number }): Record<string, unknown> {
  const memory = memoryOf(r.proc.pid);
  const restored = line(r.proc, 'graph restored') as
    | { restoreMs?: Record<string, number>; from?: string; snapshotRead?: string }
    | undefined;
  const first = /\{[^\n]*"msg":"[^\n]*\}/.exec(r.proc.output)?.[0];
  const firstTime = first ? (JSON.parse(first) as { time: number }).time : Number.NaN;
  const ready = line(r.proc, 'majordomo ready')?.time as number | undefined;
  const restoredAt = line(r.proc, 'graph restored')?.time as number | undefined;
  const collected = line(r.proc, 'heap collected once restored') as { ms?: number } | undefined;
  return {
    ready_ms: Math.round(r.ms),
    spawn_to_first_log_ms: firstTime - r.at,
    ...Object.fromEntries(
      Object.entries(restored?.restoreMs ?? {}).map(([k, v]) => [`restore_${k}_ms`, v]),
    ),
    restored_to_ready_ms: (ready ?? Number.NaN) - (restoredAt ?? Number.NaN),
    heap_collected_ms: collected?.ms,
    from: restored?.from,
    snapshot_read: restored?.snapshotRead,
    ...memory,
    ...(GC ? gcFigures(r.proc.output, r.proc.output.search(READY)) : {}),
  };
}

const cb = generate(42, SIZE / FULL);
const stacks: Stack[] = [];
const runs = new Map<string, number[]>();
try {
  for (const [i, { name, bundle, flags }] of bundles.entries()) {
    const stack = await Stack.start(`restarts${i}`);
    stacks.push(stack);
    await seedProject(stack.bus, `restarts${i}`, cb, POD);
    const first = await start(stack, bundle, flags);
    await first.proc.waitForOutput(/"msg":"graph snapshot stored"/, 900_000);
    runs.set(name, []);
  }
  // Each round in the other order than the last, and each MajorDomo killed -9 once measured (a
  // profiled one stopped, to write its profile): a MajorDomo just ready goes on working (its
  // heap's collection, its code cache written), and the next variant's start shared the CPU with
  // it, always the same variant's in one order.
  const round = async (nodeArgs: (bundle: string) => string[], n: number, keep = false) => {
    const order = [...bundles.entries()];
    if (n % 2 === 1) order.reverse();
    for (const [i, { name, bundle, flags }] of order) {
      const stack = stacks[i]!;
      await stack.kill9('majordomo');
      const r = await start(stack, bundle, [...flags, ...nodeArgs(`${i}.${basename(bundle)}`)]);
      const f = figures(r);
      if (keep)
        await stack.procs.get('majordomo')?.stop(60_000); // writes its profile
      else await stack.kill9('majordomo');
      runs.get(name)!.push(r.ms);
      if (DUMP) {
        mkdirSync(DUMP, { recursive: true });
        writeFileSync(join(DUMP, `${i}.${runs.get(name)!.length}.log`), r.proc.output);
      }
      console.log(JSON.stringify({ variant: name, load: loadavg()[0], ...f }));
      if (f.from !== 'snapshot') throw new Error(`${name} restored from ${f.from}`);
    }
  };
  for (let n = 0; n < ROUNDS; n++) await round(() => [], n);
  if (PROF) {
    mkdirSync(PROF, { recursive: true });
    await round(
      (bundle) => [
        `--${PROF_KIND}-prof`,
        `--${PROF_KIND}-prof-dir=${PROF}`,
        `--${PROF_KIND}-prof-name=${basename(bundle)}.${Date.now()}.${PROF_KIND}profile`,
      ],
      ROUNDS,
      true,
    );
  }
} finally {
  for (const stack of stacks) await stack[Symbol.asyncDispose]();
  bundleDir[Symbol.dispose]();
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
console.log(
  JSON.stringify(
    Object.fromEntries([...runs].map(([b, ms]) => [b, { median: median(ms), runs: ms }])),
  ),
);
