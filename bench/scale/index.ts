// pnpm bench scale: big projects in a live MajorDomo. The depgraph bench's generated code base
// (bench/lib/graph-gen.ts) at each size of CP_SCALE_SIZES (default 1000,10000 artefacts,
// approximately: the generator scales modules, binaries and documents), written into the
// project's KV buckets as a settled site holds it (project.ts), then MajorDomo started as its own
// OS process on the test kit's Stack (operator-mode nats-server, least-privilege credentials),
// from its one-file bundle as `up` and deploy/ start it (scripts/bundle.mjs, built here into a
// temp dir), killed -9 and started again. Per size:
//   restore: spawn to "majordomo ready" after a kill -9, and MajorDomo's own restore phases
//     (its log: KV reads, graph, first plan; snapshot_read: whether the snapshot's parts came
//     from MajorDomo's local copy of it in its state dir or from KV); the same from its TypeScript sources through tsx
//     (as tests start it), the runs of the two alternating (CP_SCALE_TSX=0 skips tsx's); then
//     CP_SCALE_CHEF_RESTARTS times (default 2) every chef restarted while MajorDomo is down (new
//     $SRV ids in the declarations, chef-restart.ts) before the kill -9 restart; and one chef
//     upgraded with a rule more, then downgraded (a rule less), each before a kill -9 restart;
//   memory: MajorDomo's VmRSS once ready and its peak (VmHWM) after the queries;
//   queries: status (its summary; a page of 1,000 records; every record page by page), graph and
//     why through the NATS API (as cpctrl asks) and REST, p50/p99;
//   KV: a listing of the artefacts and traces buckets from another client (what a restore reads);
//   edit to dispatch: a files.changed batch published as the fswatcher publishes it (its
//     credentials, its subject) to the build request on the chef's subject; then undone (the
//     build is cancelled), CP_SCALE_EDITS times;
//   ninja: `ninja -n` on the same tree after one edit, run between MajorDomo's restarts (the same
//     load), against MajorDomo's cold start (restore + edit to dispatch), both directions.
// Chefs are played by their declarations in KV (no chef process; MajorDomo's chef timeout is set
// beyond the run so it does not retire them). Then, at the smallest size, standby failover:
// two MajorDomos (CP_MAJORDOMO_HA=1, the default lease), the leader killed -9, until the standby
// is ready; and cluster node loss (node-loss.ts; CP_SCALE_NODE_LOSS=0 skips it).
//
// Listing a bucket used to be O(n²) on an operator-mode nats-server (99,141 records: ~250 s):
// every consumer delivery carries a reply subject, which nats-server records for a user with
// response permissions (every role has them) and, past 4,096 records, walks on each delivery.
// Listings now read with message gets (packages/bus kv-list.ts), and answers over the max
// payload come in parts (bus reply-chunks.ts), so status and graph over NATS work at 100k too.
import { readFileSync, utimesSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { Bus, quietLogger } from '@computepods/bus';
import {
  BuildRequested,
  Envelope,
  GraphReply,
  StatusReply,
  statusWithAllArtefacts,
  subjects,
  WhyReply,
} from '@computepods/protocol';
import { type ManagedProcess, TempDir } from '@computepods/testkit';
import { startBundled } from '../../test/src/bundled-service.js';
import { Stack } from '../../test/src/stack.js';
import { bundleChild } from '../lib/bundle.js';
import { generate, hashOf } from '../lib/graph-gen.js';
import { ninjaDryRun, T_EDIT, writeNinjaTree } from '../lib/ninja.js';
import { finish, percentile, round, table } from '../lib/report.js';
import { bundleCopy } from './bundle-copy.js';
import { PlayedChefs } from './chef-restart.js';
import { nodeLoss } from './node-loss.js';
import { seedProject } from './project.js';

const FULL = 100_000;
const SIZES = (process.env.CP_SCALE_SIZES ?? '1000,10000')
  .split(',')
  .map((s) => Number(s.trim()))
  .filter((n) => Number.isFinite(n) && n > 0);
const EDITS = Number(process.env.CP_SCALE_EDITS ?? 30);
const RESTARTS = Number(process.env.CP_SCALE_RESTARTS ?? 2);
const CHEF_RESTARTS = Number(process.env.CP_SCALE_CHEF_RESTARTS ?? 2);
const COMPARE_TSX = process.env.CP_SCALE_TSX !== '0';
/** How long an edit's build request, or its undo's cancel, may take before the run fails. */
const EDIT_WAIT_MS = 120_000;
const POD = 'pod-scale';
const READY = /"msg":"majordomo ready"/;
const ANY_LINE = /"msg":"/;
/**
 * Node flags for MajorDomo (CP_SCALE_MD_NODE_FLAGS, none by default: up and deploy/ give none).
 * A young generation of 2 x 32 MiB (--max-semi-space-size=32) was tried against none, restarts
 * alternating in one run: restore median 4214 ms with it, 3960 without, RSS 325 against 308 MiB
 * (both sides then started one bundle file, each refusing the other's code cache: see
 * MD_BUNDLE_ALT).
 */
const MD_NODE_FLAGS = process.env.CP_SCALE_MD_NODE_FLAGS ?? '';
/**
 * CP_SCALE_MD_NODE_FLAGS_ALT: other flags to compare in the same run (restarts from the bundle
 * alternate between the two, ending on MD_NODE_FLAGS'; `''`: none). Needs CP_SCALE_TSX=0.
 */
const MD_NODE_FLAGS_ALT = process.env.CP_SCALE_MD_NODE_FLAGS_ALT;
const MD_ENV = {
  CP_LOG_LEVEL: 'info',
  CP_CHEF_TIMEOUT_MS: String(2 ** 31 - 1),
  ...(MD_NODE_FLAGS ? { NODE_OPTIONS: MD_NODE_FLAGS } : {}),
};
const loadStart = loadavg()[0] ?? 0;
const bundleDir = new TempDir('cp-scale-bundle-');
const MD_BUNDLE = await bundleChild(
  new URL('../../services/majordomo/src/main.ts', import.meta.url),
  bundleDir.path,
  'majordomo',
);
/**
 * The alternative flags' starts run a copy of the bundle: V8 refuses a code cache made under
 * other flags, and a start without a usable one writes its own beside the bundle
 * (scripts/code-cache.mjs), so alternating flags on one bundle compiled from nothing at each
 * start and spoiled the other side's cache.
 */
const MD_BUNDLE_ALT =
  MD_NODE_FLAGS_ALT === undefined
    ? MD_BUNDLE
    : bundleCopy(MD_BUNDLE, bundleDir.join('alt'), MD_NODE_FLAGS_ALT.split(' ').filter(Boolean));
/** How MajorDomo starts: from its bundle (as deployed) or its sources through tsx (as tested). */
type StartFrom = 'bundle' | 'sources' | 'alt';

const now = () => performance.now();
const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
const p50 = (xs: number[]) => percentile(sorted(xs), 50);
const p99 = (xs: number[]) => percentile(sorted(xs), 99);
const median = p50;

function memoryOf(pid: number | undefined): { rssMiB: number; hwmMiB: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+)`, 'm').exec(status)?.[1]);
  return { rssMiB: kib('VmRSS') / 1024, hwmMiB: kib('VmHWM') / 1024 };
}

/**
 * The restore phases MajorDomo logs once restored (ms), what it restored from (a snapshot and
 * the keys written since, or every record) and how many keys that tail had.
 */
function restorePhases(proc: ManagedProcess, at?: number): Record<string, number | string> {
  const line = /\{[^\n]*"msg":"graph restored[^\n]*\}/.exec(proc.output)?.[0];
  if (!line) return {};
  // Where the rest of spawn -> ready goes, by the log lines' times (pino's epoch ms): to its first
  // line (credentials, process start, bundle load), to "restoring" (config, connect), and from
  // "graph restored" to "majordomo ready" (main.ts's watches, HTTP).
  const timeOf = (msg: string) => {
    const l = new RegExp(`\\{[^\\n]*"msg":"${msg}[^\\n]*\\}`).exec(proc.output)?.[0];
    return l ? (JSON.parse(l) as { time?: number }).time : undefined;
  };
  const firstLine = /\{[^\n]*"msg":"[^\n]*\}/.exec(proc.output)?.[0];
  const first = firstLine ? (JSON.parse(firstLine) as { time?: number }).time : undefined;
  const [restoring, restored, ready] = [
    timeOf('restoring the graph from KV'),
    timeOf('graph restored'),
    timeOf('majordomo ready'),
  ];
  const gaps: Record<string, number> = {};
  if (at !== undefined && first !== undefined) gaps.spawn_to_first_log_ms = first - at;
  if (first !== undefined && restoring !== undefined)
    gaps.first_log_to_restoring_ms = restoring - first;
  if (restored !== undefined && ready !== undefined) gaps.restored_to_ready_ms = ready - restored;
  const logged = JSON.parse(line) as {
    restoreMs?: Record<string, number>;
    memoryMiB?: Record<string, number>;
    from?: string;
    snapshotRead?: string;
    tail?: { artefacts: number; traces: number };
  };
  // Spawn to the first plan known ("restoring" plus its KV, graph, reclassify and plan phases):
  // what `ninja -n` does, a fresh process reading its state from disk until it knows what to
  // run. "ready" adds the consumers, the watches, the HTTP API and the NATS API's subscriptions.
  const r = logged.restoreMs ?? {};
  if (at !== undefined && restoring !== undefined && r.plan !== undefined)
    gaps.spawn_to_planned_ms =
      restoring - at + (r.kv ?? 0) + (r.graph ?? 0) + (r.reclassify ?? 0) + r.plan;
  return {
    ...Object.fromEntries(Object.entries(logged.restoreMs ?? {}).map(([k, v]) => [`${k}_ms`, v])),
    ...Object.fromEntries(Object.entries(logged.memoryMiB ?? {}).map(([k, v]) => [`${k}_mib`, v])),
    ...gaps,
    from: logged.from ?? 'buckets',
    // The snapshot's parts: from MajorDomo's local copy of it, or KV (snapshot-local.ts).
    ...(logged.snapshotRead ? { snapshot_read: logged.snapshotRead } : {}),
    ...(logged.tail ? { tail_keys: logged.tail.artefacts + logged.tail.traces } : {}),
  };
}

/** Waits until a MajorDomo restored from every record has stored its snapshot (a site's has). */
async function snapshotStored(proc: ManagedProcess): Promise<void> {
  const line = await proc.waitForOutput(/"msg":"graph snapshot (stored|not stored)"/, 900_000);
  if (line.includes('not stored')) throw new Error(`MajorDomo did not store its snapshot: ${line}`);
}

/** Starts MajorDomo and waits (however long) until it is ready: spawn to ready, in ms. */
async function startMajorDomo(
  stack: Stack,
  extra: Record<string, string> = {},
  name = 'majordomo',
  ready = READY,
  from: StartFrom = 'bundle',
): Promise<{ proc: ManagedProcess; ms: number; at: number }> {
  const t0 = now();
  const at = Date.now();
  const env = { ...MD_ENV, ...(from === 'alt' ? { NODE_OPTIONS: MD_NODE_FLAGS_ALT ?? '' } : {}) };
  Object.assign(env, extra);
  const proc =
    from !== 'sources'
      ? await startBundled(stack, 'majordomo', from === 'alt' ? MD_BUNDLE_ALT : MD_BUNDLE, {
          grant: { role: 'majordomo' },
          extra: env,
          name,
          ready: ANY_LINE,
        })
      : await stack.start('majordomo', env, name, ANY_LINE);
  await proc.waitForOutput(ready, 900_000);
  return { proc, ms: now() - t0, at };
}

async function timed<T>(runs: number, fn: () => Promise<T>): Promise<{ ms: number[]; last: T }> {
  const ms: number[] = [];
  let last: T | undefined;
  for (let i = 0; i < runs; i++) {
    const t0 = now();
    last = await fn();
    ms.push(now() - t0);
  }
  return { ms, last: last as T };
}

/** A query that may fail at this size (a NATS reply over the max payload): its error instead. */
async function latency<T>(
  runs: number,
  fn: () => Promise<T>,
): Promise<{ p50: number; p99: number; error?: string }> {
  try {
    const { ms } = await timed(runs, fn);
    return { p50: p50(ms), p99: p99(ms) };
  } catch (err) {
    return { p50: Number.NaN, p99: Number.NaN, error: (err as Error).message.slice(0, 200) };
  }
}

interface SizeResult {
  figures: Record<string, number | string>;
  row: (string | number)[];
}

async function measureSize(target: number): Promise<SizeResult> {
  const cb = generate(42, target / FULL);
  const artefacts = Object.keys(cb.state.artefacts).length;
  const edges = Object.values(cb.state.traces).reduce(
    (n, t) => n + Object.keys(t.inputs).length + Object.keys(t.outputs).length,
    0,
  );
  console.log(`\n== ${artefacts} artefacts, ${edges} edges`);
  const project = `scale${target}`;
  const stack = await Stack.start(project);
  const figures: Record<string, number | string> = {};
  const chefs = new PlayedChefs(stack, project);
  const ninjaTree = new TempDir('cp-scale-ninja-');
  try {
    const seeded = await seedProject(stack.bus, project, cb, POD);
    console.log(
      `seeded ${seeded.artefacts} artefacts, ${seeded.traces} traces, ${seeded.chefs.length} chefs in ${Math.round(seeded.seedMs)} ms`,
    );

    // What a restore reads, listed by another client: is KV the bottleneck?
    const listing = async (bucket: 'artefacts' | 'traces') => {
      const { ArtefactRecord, TaskTrace, buckets } = await import('@computepods/protocol');
      const kv =
        bucket === 'artefacts'
          ? await stack.bus.kv(buckets.artefacts(project), ArtefactRecord)
          : await stack.bus.kv(buckets.traces(project), TaskTrace);
      const t0 = now();
      const n = (await kv.entries()).size;
      return { ms: now() - t0, n };
    };
    const listArtefacts = await listing('artefacts');
    const listTraces = await listing('traces');

    // First start from every record (no snapshot yet), which stores the snapshot; then kill -9
    // and start again: the restore a crash costs (from the snapshot and the keys written since).
    const first = await startMajorDomo(stack);
    const fullPhases = restorePhases(first.proc);
    await snapshotStored(first.proc);
    // ninja -n on the same tree after one edit, from nothing (a fresh process reading its
    // files), run between the restarts (before each pair and after the last) so that both see
    // the same load: run once the queries and edits were done, minutes later, its time moved
    // with whatever else ran by then (408-1,044 ms in this session's runs).
    writeNinjaTree(ninjaTree.path, cb);
    ninjaDryRun(ninjaTree.path); // page cache warm, as MajorDomo's KV is
    utimesSync(join(ninjaTree.path, cb.cFiles[0]!), T_EDIT, T_EDIT);
    const ninjaRuns = [ninjaDryRun(ninjaTree.path)];
    // Bundle and tsx restarts alternate in pairs (a pair's second start has been seen slower),
    // ending with the bundle's, whose process the rest measures.
    const restores: Record<StartFrom, number[]> = { bundle: [], sources: [], alt: [] };
    let altPhases: Record<string, number | string> = {};
    let phases: Record<string, number | string> = {};
    let proc: ManagedProcess | undefined;
    for (let i = 0; i < RESTARTS; i++) {
      const second: StartFrom | undefined = COMPARE_TSX
        ? 'sources'
        : MD_NODE_FLAGS_ALT !== undefined
          ? 'alt'
          : undefined;
      const pair: StartFrom[] = !second
        ? ['bundle']
        : (RESTARTS - 1 - i) % 2 === 0
          ? [second, 'bundle']
          : ['bundle', second];
      for (const from of pair) {
        await stack.kill9('majordomo');
        const r = await startMajorDomo(stack, {}, 'majordomo', READY, from);
        restores[from].push(r.ms);
        if (from === 'bundle') phases = restorePhases(r.proc, r.at);
        if (from === 'alt') altPhases = restorePhases(r.proc, r.at);
        proc = r.proc;
      }
      ninjaRuns.push(ninjaDryRun(ninjaTree.path));
    }
    // Every chef restarted while MajorDomo is down, then the kill -9 restart: what a restart
    // after a chef upgrade or crash costs (the rest measures this last MajorDomo).
    const afterChefRestart: number[] = [];
    let chefPhases: Record<string, number | string> = {};
    for (let i = 0; i < CHEF_RESTARTS; i++) {
      await stack.kill9('majordomo');
      await chefs.restart();
      const r = await startMajorDomo(stack);
      afterChefRestart.push(r.ms);
      chefPhases = restorePhases(r.proc, r.at);
      proc = r.proc;
    }
    // A chef upgraded while MajorDomo is down (a rule more), then back (a rule less).
    const afterUpgrade: number[] = [];
    const upgradePhases: Record<string, number | string>[] = [];
    for (const extra of [true, false]) {
      await stack.kill9('majordomo');
      await chefs.upgrade(extra);
      const r = await startMajorDomo(stack);
      afterUpgrade.push(r.ms);
      upgradePhases.push(restorePhases(r.proc, r.at));
      proc = r.proc;
      // Planned with other rules, it stores a new snapshot: the next restart starts from it (a
      // kill -9 before it is stored would leave the last one, planned as the next one is).
      await snapshotStored(r.proc);
    }
    if (!proc) throw new Error('CP_SCALE_RESTARTS must be at least 1');
    const memReady = memoryOf(proc.pid);
    const url = await stack.httpUrl();
    const auth = { authorization: `Bearer ${stack.apiToken}` };
    const rest = async (path: string) => {
      const res = await fetch(`${url}${path}`, { headers: auth });
      const text = await res.text();
      if (!res.ok) throw new Error(`${path}: HTTP ${res.status} ${text.slice(0, 200)}`);
      return text.length;
    };

    // Checked through REST; over NATS below (an answer over the max payload comes in parts).
    const statusRes = await fetch(`${url}/api/status`, { headers: auth });
    const status = StatusReply.parse(await statusRes.json());
    if (status.summary.artefacts !== artefacts || !status.idle || status.summary.queued) {
      throw new Error(
        `restored MajorDomo should hold ${artefacts} artefacts, idle, nothing queued: ${status.summary.artefacts}, idle ${status.idle}, queued ${status.summary.queued}`,
      );
    }
    // Fewer runs of the whole-graph queries at the largest sizes (each is seconds there).
    const big = Math.max(3, Math.min(20, Math.round(2e6 / artefacts)));
    const objs = cb.cFiles.filter((_, i) => i % Math.ceil(cb.cFiles.length / 50) === 0);
    let w = 0;
    const why = () => objs[w++ % objs.length]!.replace(/^src\/(.*)\.c$/, 'obj/$1.o');
    const statusNats = await latency(big, () =>
      stack.bus.request('status', {}, StatusReply, { timeoutMs: 120_000 }),
    );
    const statusRest = await latency(big, () => rest('/api/status'));
    const statusBytes = await rest('/api/status');
    // One page of 1,000 records, and every record page by page (what the whole list costs now).
    const pageQuery = '/api/status?artefacts=true&limit=1000';
    const statusPageRest = await latency(big, () => rest(pageQuery));
    const statusPageBytes = await rest(pageQuery);
    const statusAll = await timed(1, () =>
      statusWithAllArtefacts((req) =>
        stack.bus.request('status', req, StatusReply, { timeoutMs: 120_000 }),
      ),
    );
    if (statusAll.last.artefacts.length !== artefacts)
      throw new Error(`paged status gave ${statusAll.last.artefacts.length} of ${artefacts}`);
    const graphNats = await latency(big, () =>
      stack.bus.request('graph', { format: 'json' }, GraphReply, { timeoutMs: 120_000 }),
    );
    const graphRest = await latency(big, () => rest('/api/graph?format=json'));
    const graphBytes = await rest('/api/graph?format=json');
    const whyNats = await latency(200, () =>
      stack.bus.request('why', { path: why() }, WhyReply, { timeoutMs: 30_000 }),
    );
    const whyRest = await latency(200, () => rest(`/api/why?path=${encodeURIComponent(why())}`));

    // One source edit, as the fswatcher announces it, to the build request; then undone.
    const watcherLogger = quietLogger('scale-fswatcher');
    const watcher = await Bus.connect({
      servers: stack.nats.url,
      credsFile: await stack.creds({ role: 'fswatcher', scope: POD }),
      service: 'fswatcher',
      project,
      logger: watcherLogger,
      discoverable: false,
    });
    const requested = new Map<string, () => void>();
    const cancelled = new Map<string, () => void>();
    const decode = (data: Uint8Array) => Envelope.parse(JSON.parse(new TextDecoder().decode(data)));
    const reqSub = stack.bus.nc.subscribe(subjects.buildRequestAll(project), {
      callback: (_e, m) => {
        const body = BuildRequested.parse(decode(m.data).body);
        requested.get(body.taskId)?.();
      },
    });
    const cancelSub = stack.bus.nc.subscribe(subjects.buildCancel(project), {
      callback: () => {
        for (const done of cancelled.values()) done();
      },
    });
    await stack.bus.nc.flush();
    const announce = (path: string, sha256: string, seq: number) =>
      watcher.publish(
        'files.changed',
        subjects.filesChanged(project, POD),
        {
          pod: POD,
          events: [
            {
              kind: 'changed',
              path,
              size: 1,
              mtimeNs: String(BigInt(Date.now()) * 1_000_000n + BigInt(seq)),
              sha256,
            },
          ],
        },
        { msgId: `scale-${target}-${seq}` },
      );
    const editMs: number[] = [];
    const step = Math.max(1, Math.floor(cb.cFiles.length / EDITS));
    // A request or cancel that never comes fails the run, naming it, instead of holding the
    // bench lock for ever (a run of 15af985 hung 20 minutes after its queries, idle: the only
    // wait without a deadline from there on was here; not caught in the act).
    const seen = (what: string, p: Promise<void>) =>
      Promise.race([
        p,
        new Promise<never>((_, fail) =>
          setTimeout(
            () => fail(new Error(`no ${what} within ${EDIT_WAIT_MS / 1000} s`)),
            EDIT_WAIT_MS,
          ).unref(),
        ),
      ]);
    try {
      for (let i = 0; i < EDITS; i++) {
        const file = cb.cFiles[(i * step) % cb.cFiles.length]!;
        const taskId = `cc:${file.slice(4, -2)}`;
        const dispatched = new Promise<void>((r) => requested.set(taskId, r));
        const t0 = now();
        await announce(file, hashOf(`${file} edited ${i}`), 2 * i);
        await seen(`build request for ${taskId} (edit ${i})`, dispatched);
        editMs.push(now() - t0);
        requested.delete(taskId);
        const undone = new Promise<void>((r) => cancelled.set(taskId, r));
        await announce(file, cb.state.artefacts[file]!, 2 * i + 1);
        await seen(`build.cancel after undoing edit ${i} (${taskId})`, undone);
        cancelled.delete(taskId);
      }
    } finally {
      reqSub.unsubscribe();
      cancelSub.unsubscribe();
      await watcher.close();
    }
    const memEnd = memoryOf(proc.pid);

    const ninjaMs = ninjaRuns.map((r) => r.ms);
    const ninjaCommands = ninjaRuns[0]!.commands;

    const restore = median(restores.bundle);
    const restoreTsx = restores.sources.length ? median(restores.sources) : Number.NaN;
    const edit = p50(editMs);
    const coldMs = restore + edit;
    const ninja = median(ninjaMs);
    Object.assign(figures, {
      artefacts,
      edges,
      tasks: seeded.traces,
      seed_ms: seeded.seedMs,
      kv_list_artefacts_ms: listArtefacts.ms,
      kv_list_traces_ms: listTraces.ms,
      restore_runs_ms: restores.bundle.map((x) => round(x, 0)).join(' '),
      restore_ms: restore,
      ...(COMPARE_TSX
        ? {
            restore_tsx_runs_ms: restores.sources.map((x) => round(x, 0)).join(' '),
            restore_tsx_ms: restoreTsx,
            ratio_restore_tsx_over_bundle: restoreTsx / restore,
          }
        : {}),
      ...(restores.alt.length
        ? {
            restore_alt_node_flags: MD_NODE_FLAGS_ALT ?? '',
            restore_alt_runs_ms: restores.alt.map((x) => round(x, 0)).join(' '),
            restore_alt_ms: median(restores.alt),
            ratio_restore_alt_over_bundle: median(restores.alt) / restore,
            ...Object.fromEntries(
              Object.entries(altPhases).map(([k, v]) => [`restore_alt_${k}`, v]),
            ),
          }
        : {}),
      ...Object.fromEntries(Object.entries(phases).map(([k, v]) => [`restore_${k}`, v])),
      ...(afterChefRestart.length
        ? {
            restore_after_chef_restart_runs_ms: afterChefRestart.map((x) => round(x, 0)).join(' '),
            restore_after_chef_restart_ms: median(afterChefRestart),
            ratio_restore_after_chef_restart_over_restore: median(afterChefRestart) / restore,
            ...Object.fromEntries(
              Object.entries(chefPhases).map(([k, v]) => [`restore_after_chef_restart_${k}`, v]),
            ),
          }
        : {}),
      restore_after_chef_upgrade_rule_added_ms: afterUpgrade[0] ?? Number.NaN,
      restore_after_chef_upgrade_rule_removed_ms: afterUpgrade[1] ?? Number.NaN,
      ...Object.fromEntries(
        upgradePhases.flatMap((ph, i) =>
          Object.entries(ph).map(([k, v]) => [
            `restore_after_chef_upgrade_rule_${i ? 'removed' : 'added'}_${k}`,
            v,
          ]),
        ),
      ),
      restore_full_ms: first.ms,
      ...Object.fromEntries(Object.entries(fullPhases).map(([k, v]) => [`restore_full_${k}`, v])),
      rss_ready_mib: memReady.rssMiB,
      rss_end_mib: memEnd.rssMiB,
      rss_peak_mib: memEnd.hwmMiB,
      status_bytes: statusBytes,
      status_nats_p50_ms: statusNats.p50,
      status_nats_p99_ms: statusNats.p99,
      ...(statusNats.error ? { status_nats_error: statusNats.error } : {}),
      status_rest_p50_ms: statusRest.p50,
      status_rest_p99_ms: statusRest.p99,
      status_page_1000_bytes: statusPageBytes,
      status_page_1000_rest_p50_ms: statusPageRest.p50,
      status_page_1000_rest_p99_ms: statusPageRest.p99,
      status_all_pages_nats_ms: statusAll.ms[0] ?? Number.NaN,
      graph_bytes: graphBytes,
      graph_nats_p50_ms: graphNats.p50,
      graph_nats_p99_ms: graphNats.p99,
      ...(graphNats.error ? { graph_nats_error: graphNats.error } : {}),
      graph_rest_p50_ms: graphRest.p50,
      graph_rest_p99_ms: graphRest.p99,
      why_nats_p50_ms: whyNats.p50,
      why_nats_p99_ms: whyNats.p99,
      why_rest_p50_ms: whyRest.p50,
      why_rest_p99_ms: whyRest.p99,
      edits: editMs.length,
      edit_to_dispatch_p50_ms: edit,
      edit_to_dispatch_p99_ms: p99(editMs),
      ninja_n_after_edit_ms: ninja,
      ninja_n_commands: ninjaCommands,
      cold_start_ms: coldMs,
      ratio_cold_start_over_ninja: coldMs / ninja,
      ratio_ninja_over_cold_start: ninja / coldMs,
      // The last bundle restart's spawn to its plan known (restore_spawn_to_planned_ms), the
      // like-for-like peer of ninja -n; cold_start_ms is to ready plus an edit's dispatch.
      ratio_spawn_to_planned_over_ninja: Number(phases.spawn_to_planned_ms) / ninja,
    });
    return {
      figures,
      row: [
        artefacts,
        round(restore, 0),
        round(restoreTsx, 0),
        afterChefRestart.length ? round(median(afterChefRestart), 0) : Number.NaN,
        String(chefPhases.from ?? '-'),
        afterUpgrade.map((x) => round(x, 0)).join(' '),
        upgradePhases.map((ph) => String(ph.from ?? '-')).join(' '),
        round(first.ms, 0),
        round(memReady.rssMiB, 0),
        round(memEnd.hwmMiB, 0),
        round(statusNats.p50, 1),
        round(statusRest.p50, 1),
        round(graphRest.p50, 1),
        round(whyNats.p50, 2),
        round(edit, 1),
        round(ninja, 0),
      ],
    };
  } catch (err) {
    console.error(stack.logs(4000));
    throw err;
  } finally {
    ninjaTree[Symbol.dispose]();
    await chefs.stop();
    await stack[Symbol.asyncDispose]();
  }
}

/** Two MajorDomos (CP_MAJORDOMO_HA=1, default lease): kill -9 the leader until the standby is ready. */
async function failover(target: number): Promise<Record<string, number | string>> {
  const cb = generate(42, target / FULL);
  const project = `failover${target}`;
  const stack = await Stack.start(project);
  try {
    await seedProject(stack.bus, project, cb, POD);
    const ha = (id: string) => ({ CP_MAJORDOMO_HA: '1', CP_MAJORDOMO_ID: id });
    const leader = await startMajorDomo(stack, ha('md-a'), 'md-a');
    await snapshotStored(leader.proc);
    await startMajorDomo(stack, ha('md-b'), 'md-b', /"msg":"standby: md-a leads/);
    const b = stack.procs.get('md-b')!;
    const from = b.output.length;
    const t0 = now();
    await stack.kill9('md-a');
    await b.waitForOutput(/"msg":"took the lease from md-a/, 120_000, from);
    const tookMs = now() - t0;
    await b.waitForOutput(READY, 900_000, from);
    const readyMs = now() - t0;
    // The standby's own restore (its phases, what it restored from): where the time after the
    // lease went.
    const phases = Object.entries(restorePhases(b)).map(([k, v]) => [`failover_restore_${k}`, v]);
    return { failover_lease_ms: tookMs, failover_ready_ms: readyMs, ...Object.fromEntries(phases) };
  } catch (err) {
    console.error(stack.logs(4000));
    throw err;
  } finally {
    await stack[Symbol.asyncDispose]();
  }
}

const results: SizeResult[] = [];
for (const size of SIZES) results.push(await measureSize(size));
const smallest = SIZES.length ? Math.min(...SIZES) : 0;
const fo = SIZES.length ? await failover(smallest) : {};
// Last: a cluster stack sets NATS_CA and CP_REPLICAS for this process.
const nl =
  SIZES.length && process.env.CP_SCALE_NODE_LOSS !== '0'
    ? await nodeLoss(generate(42, smallest / FULL), smallest)
    : {};
const loadEnd = loadavg()[0] ?? 0;

table(
  'MajorDomo with a generated project: restore after kill -9 (from its snapshot; started from its bundle, and through tsx; after every chef restarted, from what it says), the first from every KV record (times in ms, memory in MiB)',
  [
    'artefacts',
    'restore',
    'restore (tsx)',
    'after chef restart',
    'from',
    'after rule +/-',
    'from',
    'full restore',
    'rss',
    'rss peak',
    'status nats',
    'status rest',
    'graph rest',
    'why nats',
    'edit→dispatch',
    'ninja -n',
  ],
  results.map((r) => r.row),
);

// Growth from each size to the next: the factor of the figure against the factor of artefacts.
const growth: Record<string, number> = {};
const GROWN = [
  'restore_ms',
  'rss_ready_mib',
  'status_rest_p50_ms',
  'graph_rest_p50_ms',
  'why_nats_p50_ms',
  'edit_to_dispatch_p50_ms',
  'kv_list_artefacts_ms',
] as const;
const growthRows: (string | number)[][] = [];
for (let i = 1; i < results.length; i++) {
  const a = results[i - 1]!.figures;
  const b = results[i]!.figures;
  const n = (b.artefacts as number) / (a.artefacts as number);
  const row: (string | number)[] = [`${a.artefacts} → ${b.artefacts} (×${round(n, 1)})`];
  for (const k of GROWN) {
    const f = (b[k] as number) / (a[k] as number);
    growth[`growth_${k}_${a.artefacts}_${b.artefacts}`] = f;
    // Linear: the figure grows by the artefact factor (within a factor 2 either way).
    row.push(`×${round(f, 1)} ${f > 2 * n ? 'super' : f < n / 2 ? 'sub' : 'linear'}`);
  }
  growthRows.push(row);
}
if (growthRows.length)
  table('Growth (figure factor, against the artefact factor)', ['sizes', ...GROWN], growthRows);
if (fo.failover_ready_ms !== undefined)
  console.log(
    `\nfailover at ${smallest} artefacts: lease taken ${round(Number(fo.failover_lease_ms ?? 0), 0)} ms after kill -9, standby ready ${round(Number(fo.failover_ready_ms), 0)} ms after (restored from ${fo.failover_restore_from ?? '?'} in ${fo.failover_restore_total_ms ?? '?'} ms)`,
  );
if (nl.node_loss_leader_kill_to_request_ms !== undefined) {
  const ms = (k: string) => round(Number(nl[k] ?? Number.NaN), 0);
  console.log(
    `cluster node loss at ${nl.node_loss_artefacts} artefacts: one edit to its build request ${ms('node_loss_healthy_edit_to_request_ms')} ms with 3 nodes; kill -9 of the node leading ${nl.node_loss_victim_led ?? '?'} to the next edit's request stored ${ms('node_loss_leader_kill_to_request_ms')} ms (the edit acknowledged ${ms('node_loss_kill_to_files_acked_ms')} ms, the request sent ${ms('node_loss_kill_to_request_sent_ms')} ms; MajorDomo tried ${nl.node_loss_md_retries} writes again${nl.node_loss_md_retry_errors ? `: ${nl.node_loss_md_retry_errors}` : ''})`,
  );
}
console.log(`load average (1 min): ${loadStart} at start, ${loadEnd} at end`);
bundleDir[Symbol.dispose]();

const out: Record<string, number | string> = {};
for (const r of results)
  for (const [k, v] of Object.entries(r.figures)) out[`a${r.figures.artefacts}_${k}`] = v;
finish('scale', {
  sizes: results.map((r) => r.figures.artefacts).join(','),
  md_node_flags: MD_NODE_FLAGS,
  ...out,
  ...growth,
  ...fo,
  ...nl,
  loadavg_1m_start: loadStart,
  loadavg_1m_end: loadEnd,
});
