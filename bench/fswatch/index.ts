// pnpm bench fswatch: the change-detection core against the tools it competes with, in the
// same run on the same files.
//   1. save → event: FileWatcher (debounce + stat + SHA-256 + batch) against chokidar's raw
//      event plus the same debounce. Goal: at most 10 ms of our own overhead (p50).
//   2. SHA-256 of a 1 GiB file: hashFile against sha256sum and openssl. Goal ≥ 0.9× openssl.
//   3. restart over 100k unchanged files against `find -printf` of the same tree, cold (each a
//      fresh process, spawn to exit; goal ≤ 2× find, zero files hashed) and warm (ours again in
//      this process against find less its own start, an estimate).
//   4. (for the README's choice of watcher) inotify watches and start-up time on 10k files:
//      per-directory fs.watch (ours), chokidar v5, Node's recursive fs.watch.
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  watch,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Debouncer, FileWatcher, hashFile } from '@computepods/fswatch';
import { bundleChild } from '../lib/bundle.js';
import { childrenCpuMsOf } from '../lib/cpu.js';
import { finish, percentile, table } from '../lib/report.js';

const SAVES = Number(process.env.BENCH_SAVES ?? 200);
const HASH_MIB = Number(process.env.BENCH_HASH_MIB ?? 1024);
const FILES = Number(process.env.BENCH_FILES ?? 100_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const DEBOUNCE_MS = 20;

// chokidar is a dependency of the fswatch package, not of the bench workspace.
const req = createRequire(new URL('../../packages/fswatch/package.json', import.meta.url));
interface Chokidar {
  watch(
    path: string,
    opts: { ignoreInitial: boolean; cwd?: string },
  ): {
    on(ev: string, fn: (...args: never[]) => void): unknown;
    close(): Promise<void>;
  };
}
const chokidar = (await import(pathToFileURL(req.resolve('chokidar')).href)) as Chokidar;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ms = (t0: number) => performance.now() - t0;
const base = mkdtempSync(join(tmpdir(), 'cp-bench-fswatch-'));
const figures: Record<string, number | string | boolean> = {};

async function waitFor(cond: () => boolean, what: string, timeoutMs = 120_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`bench: timed out waiting for ${what}`);
    await sleep(1);
  }
}

/** inotify watches held by this process (from /proc/self/fdinfo). */
function inotifyWatches(): number {
  let n = 0;
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      if (!readlinkSync(`/proc/self/fd/${fd}`).includes('inotify')) continue;
      n += readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8')
        .split('\n')
        .filter((l) => l.startsWith('inotify wd')).length;
    } catch {
      // fd closed meanwhile
    }
  }
  return n;
}

async function saveLatency(): Promise<void> {
  const root = join(base, 'latency');
  mkdirSync(root);
  const files = Array.from({ length: SAVES }, (_, i) => `f${i}.tex`);
  for (const f of files) writeFileSync(join(root, f), 'initial');
  const ours = new Map<string, number>();
  const theirs = new Map<string, number>();
  const w = new FileWatcher({
    root,
    stampFile: join(base, 'latency.stamps'),
    debounceMs: DEBOUNCE_MS,
    onBatch: async (events) => {
      const t = performance.now();
      for (const e of events) if (!ours.has(e.path)) ours.set(e.path, t);
    },
  });
  await w.start();
  await w.idle();
  ours.clear();
  // chokidar's raw event, debounced the same way, in the same process and run.
  const deb = new Debouncer(DEBOUNCE_MS, 500, (items) => {
    const t = performance.now();
    for (const it of items) if (!theirs.has(it.path)) theirs.set(it.path, t);
  });
  const cw = chokidar.watch(root, { ignoreInitial: true, cwd: root });
  await new Promise<void>((r) => cw.on('ready', () => r()));
  cw.on('all', (_ev: string, path: string) => deb.touch(path));

  const oursLat: number[] = [];
  const theirLat: number[] = [];
  for (let i = 0; i < SAVES; i++) {
    const f = files[i]!;
    const t0 = performance.now();
    writeFileSync(join(root, f), `saved ${i} ${randomBytes(8).toString('hex')}`);
    await waitFor(() => ours.has(f) && theirs.has(f), `save ${i}`, 10_000);
    oursLat.push(ours.get(f)! - t0);
    theirLat.push(theirs.get(f)! - t0);
    await sleep(5);
  }
  await cw.close();
  deb.close();
  await w.close();
  oursLat.sort((a, b) => a - b);
  theirLat.sort((a, b) => a - b);
  const r = {
    ours50: percentile(oursLat, 50),
    ours99: percentile(oursLat, 99),
    chok50: percentile(theirLat, 50),
    chok99: percentile(theirLat, 99),
  };
  table(
    `save → event delivered (${SAVES} saves, ${DEBOUNCE_MS} ms debounce; warm: both watchers in this process, one save at a time), ms`,
    ['', 'p50', 'p99'],
    [
      ['FileWatcher (debounce+stat+sha256+batch)', r.ours50, r.ours99],
      ['chokidar raw event + same debounce', r.chok50, r.chok99],
      ['our overhead', r.ours50 - r.chok50, r.ours99 - r.chok99],
    ],
  );
  Object.assign(figures, {
    save_p50_ms: r.ours50,
    save_p99_ms: r.ours99,
    chokidar_debounced_p50_ms: r.chok50,
    chokidar_debounced_p99_ms: r.chok99,
    save_overhead_p50_ms: r.ours50 - r.chok50,
    save_overhead_p99_ms: r.ours99 - r.chok99,
    save_overhead_goal_met: r.ours50 - r.chok50 <= 10,
  });
}

/**
 * Wall time of one process from spawn to exit, and its CPU (user + system): this process's
 * waited-for children's total from /proc before and after (clock ticks), the same way for both
 * sides, so no wrapper such as /usr/bin/time sits in front of either.
 */
function timeProcess(cmd: string, args: string[]): { ms: number; cpuMs: number; stdout: string } {
  const cpu0 = childrenCpuMsOf(process.pid);
  const t0 = performance.now();
  const r = spawnSync(cmd, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    encoding: 'utf8',
    maxBuffer: 1 << 30,
  });
  const ms = performance.now() - t0;
  if (r.status !== 0)
    throw new Error(`bench: ${cmd} failed (${r.status ?? r.signal}): ${r.stderr}`);
  return { ms, cpuMs: childrenCpuMsOf(process.pid) - cpu0, stdout: r.stdout };
}

const FIND_ARGS = ['-printf', '%T@ %s %i %p\\n'];

function timeCmd(cmd: string, args: string[]): number {
  const t0 = performance.now();
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'ignore', 'inherit'] });
  if (r.status !== 0) throw new Error(`bench: ${cmd} failed (${r.status ?? r.signal})`);
  return ms(t0);
}

async function hashing(): Promise<void> {
  const file = join(base, 'big.bin');
  const block = randomBytes(1 << 20);
  const fd = openSync(file, 'w');
  for (let i = 0; i < HASH_MIB; i++) writeSync(fd, block);
  closeSync(fd);
  try {
    // Page cache warm for everyone: the first reader would otherwise pay for the disk.
    timeCmd('cat', [file]);
    const ours: number[] = [];
    const sha256sum: number[] = [];
    const openssl: number[] = [];
    let digest = '';
    for (let i = 0; i < ROUNDS; i++) {
      const t0 = performance.now();
      digest = await hashFile(file);
      ours.push(ms(t0));
      sha256sum.push(timeCmd('sha256sum', [file]));
      openssl.push(timeCmd('openssl', ['dgst', '-sha256', file]));
    }
    const check = execFileSync('openssl', ['dgst', '-sha256', '-r', file], { encoding: 'utf8' });
    if (!check.startsWith(digest)) throw new Error('bench: hashFile disagrees with openssl');
    const best = (xs: number[]) => Math.min(...xs);
    const mibs = (t: number) => HASH_MIB / (t / 1000);
    const o = best(ours);
    const s = best(sha256sum);
    const x = best(openssl);
    table(
      `SHA-256 of a ${HASH_MIB} MiB file (best of ${ROUNDS}, page cache warm, one at a time): hashFile in this process, the tools each a fresh process (their start is a few ms of the run)`,
      ['', 'ms', 'MiB/s', 'vs openssl'],
      [
        ['hashFile (worker thread, 1 MiB reads)', o, mibs(o), x / o],
        ['sha256sum', s, mibs(s), x / s],
        ['openssl dgst -sha256', x, mibs(x), 1],
      ],
    );
    Object.assign(figures, {
      hash_mib: HASH_MIB,
      hash_ms: o,
      hash_mib_s: mibs(o),
      sha256sum_ms: s,
      openssl_ms: x,
      hash_vs_openssl: x / o,
      hash_vs_sha256sum: s / o,
      hash_goal_met: x / o >= 0.9,
    });
  } finally {
    rmSync(file, { force: true });
  }
}

function makeTree(root: string, files: number, perDir = 100): void {
  for (let i = 0; i < files; i++) {
    const d = join(root, `d${Math.floor(i / perDir) % 10}`, `e${Math.floor(i / perDir)}`);
    if (i % perDir === 0) mkdirSync(d, { recursive: true });
    writeFileSync(join(d, `file-${i}.txt`), `content of file ${i}\n`);
  }
}

async function restart(): Promise<void> {
  const root = join(base, 'tree');
  const stampFile = join(base, 'tree.stamps');
  makeTree(root, FILES);
  let events = 0;
  const onBatch = async (e: unknown[]) => {
    events += e.length;
  };
  const t0 = performance.now();
  const first = new FileWatcher({ root, stampFile, onBatch });
  await first.start();
  await first.idle();
  const firstMs = ms(t0);
  const firstHashed = first.stats().hashed;
  await first.close();
  if (events !== FILES) throw new Error(`bench: first start reported ${events} of ${FILES}`);

  // Cold: each side a fresh process, spawn to exit, one at a time, alternating. Ours is bundled
  // as `pnpm build` bundles inotify2nats (which runs this watcher), so no tsx compile is charged.
  const child = await bundleChild(new URL('./restart-child.ts', import.meta.url), base, 'restart');
  const empty = join(base, 'empty');
  mkdirSync(empty);
  const find: number[] = [];
  const findCpu: number[] = [];
  const findEmpty: number[] = [];
  const cold: number[] = [];
  const coldCpu: number[] = [];
  const phases: Array<{ boot: number; ms: number; cpuMs: number; idle: number; close: number }> =
    [];
  let hashed = 0;
  let restartEvents = 0;
  for (let i = 0; i < ROUNDS; i++) {
    const f = timeProcess('find', [root, ...FIND_ARGS]);
    find.push(f.ms);
    findCpu.push(f.cpuMs);
    findEmpty.push(timeProcess('find', [empty, ...FIND_ARGS]).ms);
    const spawned = String(process.hrtime.bigint());
    const o = timeProcess(process.execPath, [child, root, stampFile, spawned]);
    cold.push(o.ms);
    coldCpu.push(o.cpuMs);
    const out = JSON.parse(o.stdout.trim().split('\n').at(-1)!) as (typeof phases)[number] & {
      hashed: number;
      events: number;
    };
    phases.push(out);
    hashed += out.hashed;
    restartEvents += out.events;
  }
  // Warm: the same restart inside this process (no Node boot, modules loaded, JIT done): what
  // the scan itself costs. find has no warm mode; its nearest is its time on this tree less its
  // time on an empty directory (its own start and exit), an estimate, labelled as one.
  const warm: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    events = 0;
    const t1 = performance.now();
    const w = new FileWatcher({ root, stampFile, onBatch });
    await w.start();
    warm.push(ms(t1));
    await w.idle();
    hashed += w.stats().hashed;
    restartEvents += events;
    await w.close();
  }
  const best = (xs: number[]) => Math.min(...xs);
  const f = best(find);
  const fc = best(findCpu);
  const fe = best(findEmpty);
  const fScan = f - fe;
  const o = best(cold);
  const oc = best(coldCpu);
  const ow = best(warm);
  const bestPhase = phases.reduce((a, b) => (b.ms < a.ms ? b : a));
  const inChild = best(phases.map((p) => p.ms));
  const inChildCpu = best(phases.map((p) => p.cpuMs));
  const med = (xs: number[]) =>
    percentile(
      [...xs].sort((a, b) => a - b),
      50,
    );
  table(
    `restart over ${FILES} unchanged files (best of ${ROUNDS}; one process at a time, concurrency 1)`,
    ['', 'mode', 'wall ms', 'vs find', 'CPU ms', 'hashed'],
    [
      ['FileWatcher restart: node + bundle + start + idle + close', 'cold', o, o / f, oc, hashed],
      ["find DIR -printf '%T@ %s %i %p\\n'", 'cold', f, 1, fc, 0],
      [
        '  ours: start() alone inside that fresh process',
        'cold*',
        inChild,
        inChild / f,
        inChildCpu,
        '-',
      ],
      ['FileWatcher.start() again in this process', 'warm', ow, ow / fScan, Number.NaN, hashed],
      ['find less find on an empty dir (estimate)', 'warm*', fScan, 1, Number.NaN, 0],
      [
        'first start (hash everything), this process',
        'first',
        firstMs,
        firstMs / f,
        Number.NaN,
        firstHashed,
      ],
    ],
  );
  console.log(
    `  cold*: part of a cold process (no Node boot, module load or exit). warm*: find has no warm mode.\n` +
      `  ours cold, where the time goes (run with the fastest start()): boot + module load ${bestPhase.boot.toFixed(1)} ms, ` +
      `start ${bestPhase.ms.toFixed(1)}, idle ${bestPhase.idle.toFixed(1)}, close ${bestPhase.close.toFixed(1)}, ` +
      `exit and the rest ${(cold[phases.indexOf(bestPhase)]! - bestPhase.boot - bestPhase.ms - bestPhase.idle - bestPhase.close).toFixed(1)}; ` +
      `find on an empty dir ${fe.toFixed(1)} ms`,
  );
  Object.assign(figures, {
    files: FILES,
    restart_rounds: ROUNDS,
    // cold: fresh processes, spawn to exit, best of ROUNDS
    restart_cold_ms: o,
    restart_cold_ms_median: med(cold),
    find_ms: f,
    find_ms_median: med(find),
    restart_cold_vs_find: o / f,
    find_vs_restart_cold: f / o,
    restart_cold_cpu_ms: oc,
    find_cpu_ms: fc,
    restart_cold_cpu_vs_find: oc / fc,
    restart_cold_boot_ms: bestPhase.boot,
    restart_cold_idle_ms: bestPhase.idle,
    restart_cold_close_ms: bestPhase.close,
    // start() alone inside the fresh process: the figure this bench reported as restart_ms before
    restart_start_in_fresh_process_ms: inChild,
    restart_start_in_fresh_process_cpu_ms: inChildCpu,
    restart_start_in_fresh_process_vs_find: inChild / f,
    // warm: in this process; find's nearest is an estimate
    restart_warm_ms: ow,
    find_empty_dir_ms: fe,
    find_scan_estimate_ms: fScan,
    restart_warm_vs_find_scan_estimate: ow / fScan,
    restart_warm_vs_find: ow / f,
    restart_hashed: hashed,
    restart_events: restartEvents,
    first_start_ms: firstMs,
    restart_goal_met: o / f <= 2 && hashed === 0,
  });
  rmSync(root, { recursive: true, force: true });
}

/** Why the watcher is ours: inotify watches and time to ready on the same 10k-file tree. */
async function watcherChoice(): Promise<void> {
  const root = join(base, 'choice');
  const n = 10_000;
  makeTree(root, n);
  const rows: Array<[string, number, number]> = [];
  const before = inotifyWatches();

  let t0 = performance.now();
  const w = new FileWatcher({
    root,
    stampFile: join(base, 'choice.stamps'),
    onBatch: async () => {},
  });
  await w.start();
  rows.push([
    'per-directory fs.watch (FileWatcher, incl. hashing)',
    inotifyWatches() - before,
    ms(t0),
  ]);
  await w.close();

  t0 = performance.now();
  const c = chokidar.watch(root, { ignoreInitial: true });
  await new Promise<void>((r) => c.on('ready', () => r()));
  rows.push(['chokidar v5', inotifyWatches() - before, ms(t0)]);
  await c.close();

  t0 = performance.now();
  const r = watch(root, { recursive: true }, () => {});
  // Node 20 builds the recursive watch asynchronously; wait until the count stops growing.
  let last = -1;
  for (;;) {
    await sleep(100);
    const now = inotifyWatches() - before;
    if (now === last) break;
    last = now;
  }
  rows.push([`fs.watch recursive (Node ${process.versions.node})`, last, ms(t0) - 100]);
  r.close();
  table(
    `watcher start on ${n} files in ${n / 100} directories (each in this process, one at a time)`,
    ['', 'inotify watches', 'ms'],
    rows,
  );
  Object.assign(figures, {
    choice_files: n,
    watches_ours: rows[0]![1],
    watches_chokidar: rows[1]![1],
    watches_fs_recursive: rows[2]![1],
    chokidar_ready_ms: rows[1]![2],
  });
  rmSync(root, { recursive: true, force: true });
}

// BENCH_ONLY=restart,hash runs a subset (for iterating on one figure).
figures.loadavg_1m_at_start = loadavg()[0]!;
const only = process.env.BENCH_ONLY?.split(',');
const want = (name: string) => !only || only.includes(name);
try {
  if (want('save')) await saveLatency();
  if (want('hash')) await hashing();
  if (want('restart')) await restart();
  if (want('choice')) await watcherChoice();
} finally {
  rmSync(base, { recursive: true, force: true });
}
figures.loadavg_1m_at_end = loadavg()[0]!;
finish('fswatch', figures);
