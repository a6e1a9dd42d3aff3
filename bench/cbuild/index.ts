// pnpm bench cbuild: a generated C project (CP_CBUILD_SOURCES sources, default 200, sharing
// CP_CBUILD_HEADERS headers, default 20, one program linking every object) built by the C
// chef's rules on a real stack (nats-server, MajorDomo, chef, runner with 2 lanes, fswatcher: one
// OS process each) against `make -j2` on an identical copy of the tree, in the same run: clean
// build, no-op, a one-line body edit, a header edit, a comment-only edit (early cutoff), and a
// second clean build in the same stack (warm_clean: every output removed, `make clean` for make),
// the steady state of daemons whose JIT has warmed up, where the first clean build is the cold one.
//
// The builtin `c` definition's link rule lists three objects (main.o, util.o, lib.o): a rule's
// inputs are a fixed list, a pattern cannot say "every .o". So the chef runs the builtin's
// `cc` rule verbatim (read from services/chef/chefs/c.yaml: `cc -MMD`, headers discovered from
// the depfile) with a link rule generated for this project's 201 objects, as c.yaml says to do.
//
// Counts come from a `cc` wrapper first on both systems' PATH that appends one line per
// compile or link to a ledger (what actually ran), cross-checked with the build requests
// MajorDomo sent. Wall time: ours from the edit to MajorDomo's last artefact-state event before
// a status that says idle with every artefact up to date; make's from the edit to its exit.
// CPU from /proc/<pid>/stat (utime+stime) before/after each scenario; the compilers' CPU from
// cutime+cstime of their parent (the runner's spawner; this process for make).
// Where each task's time goes in the runner, stage by stage (its message, record writes, the lane,
// the spawner, the task's processes and their CPU, the end): with CP_BENCH_STAGES=1, the runner's
// CP_TASK_STAGES_FILE (executors' task-stages.ts), one table per scenario that ran tasks
// (./stages.ts). Off by default: the runner's JSON line per task costs it CPU (5-10 % of its
// own in a clean build) that no deployment pays, on the cores the compilers share.
// CP_CBUILD_GROUP=K (default 1): every cc rule compiles K sources in a row (project.ts), the
// ceiling of what batching K compiles into one request, task and result could buy; the goals are
// not judged then (a header edit recompiles whole groups). MajorDomo's own group builds
// (CP_GROUP_BUILDS, on by default; =1 turns them off for an A/B) pack ready compiles of today's
// rules at run time, and the goals are judged with them.
// The messages each service sent and received per task: nats-server's /connz (monitoring port)
// read before and after each scenario, by connection name.
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { join } from 'node:path';
import {
  ArtefactRecord,
  buckets,
  StatusReply,
  statusWithAllArtefacts,
  streams,
  subjects,
  TaskRecord,
} from '@computepods/protocol';
import { freePort, runCommand } from '@computepods/testkit';
import { DeliverPolicy } from '@nats-io/jetstream';
import { z } from 'zod';
import { Stack } from '../../test/src/stack.js';
import {
  childrenCpuMsOf,
  cpuMsOf,
  idleWakeCostUs,
  sleepsOf,
  sleepsOfAllThreads,
} from '../lib/cpu.js';
import { publishCost } from '../lib/publish-cost.js';
import { finish, table } from '../lib/report.js';
import { cProject, headersOf, pad2, pad3 } from './project.js';
import { readStages, stageSummary } from './stages.js';

const SOURCES = Number(process.env.CP_CBUILD_SOURCES ?? 200);
const HEADERS = Number(process.env.CP_CBUILD_HEADERS ?? 20);
/** How long a scenario of ours may take before the bench gives up, saying what it saw last. */
const TIMEOUT_MS = Number(process.env.CP_CBUILD_TIMEOUT_MS ?? 300_000);
const LANES = 2; // make -j2 ⇔ the runner's CP_PARALLEL=2
const DIR = 'cproj';
/** The issue's goals, as the most our wall time may be of make's (#15). */
const GOALS: Readonly<Record<string, number>> = { clean: 1.1, warm_clean: 1.1, header: 1.0 };
const figures: Record<string, number | string | boolean> = {
  sources: SOURCES + 1,
  headers: HEADERS,
  lanes: LANES,
};
const now = () => performance.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const sha256 = (b: string | Buffer) => createHash('sha256').update(b).digest('hex');

// --- the project (project.ts) ---------------------------------------------------------------------
/** CP_CBUILD_GROUP=K: K compiles a rule (project.ts), the ceiling of batching; not the goals' setup. */
const GROUP = Number(process.env.CP_CBUILD_GROUP ?? 1);
if (!Number.isInteger(GROUP) || GROUP < 1)
  throw new Error(`CP_CBUILD_GROUP must be a whole number ≥ 1, not ${process.env.CP_CBUILD_GROUP}`);
figures.group = GROUP;
const { tree, objects, chefDef, makefile } = cProject(SOURCES, HEADERS, DIR, GROUP);

// --- the stack -------------------------------------------------------------------------------------
const STAGES = process.env.CP_BENCH_STAGES === '1';
figures.runner_stages = STAGES;
const monitorPort = await freePort();
const stack = await Stack.start('cbuild', { natsConfigLines: [`http_port: ${monitorPort}`] });
const bin = stack.dir.join('bin');
mkdirSync(bin);
// The counting cc: one line per invocation, appended (atomic under PIPE_BUF) to $CBUILD_LEDGER.
writeFileSync(
  join(bin, 'cc'),
  `#!/bin/sh
case " $* " in *" -c "*) k=compile ;; *) k=link ;; esac
echo "$k" >> "$CBUILD_LEDGER"
exec /usr/bin/cc "$@"
`,
);
chmodSync(join(bin, 'cc'), 0o755);
const ledger = { ours: stack.dir.join('ours.ledger'), make: stack.dir.join('make.ledger') };
for (const f of Object.values(ledger)) writeFileSync(f, '');
const PATH = `${bin}:${process.env.PATH ?? '/usr/bin:/bin'}`;
// The runner's stage times per task (task-stages.ts), summed up per scenario below (STAGES).
const stagesFile = stack.dir.join('stages.jsonl');
writeFileSync(stagesFile, '');
const defFile = stack.dir.join('c-bench.yaml');
writeFileSync(defFile, chefDef);

// The services log at info (a debug line a compile is CPU on the cores the build shares).
// CP_CBUILD_LOG_LEVEL=debug with CP_TEST_DUMP=DIR keeps every request and result in their logs.
const quiet = { CP_LOG_LEVEL: process.env.CP_CBUILD_LOG_LEVEL ?? 'info' };
// CP_CBUILD_PERF=DIR: `perf record` samples MajorDomo, the chef, the runner and the fswatcher on CPU (not wall time: at a
// load of 15 the inspector's sampler charges waiting for a core to whatever ran next) into
// DIR/<name>.data, with JIT symbols (--perf-basic-prof); `perf report -i DIR/chef.data`.
const perfDir = process.env.CP_CBUILD_PERF;
const profiled = (): Record<string, string> =>
  perfDir ? { NODE_OPTIONS: '--perf-basic-prof --interpreted-frames-native-stack' } : {};
if (perfDir) mkdirSync(perfDir, { recursive: true });
// MajorDomo's group builds (services/majordomo/README.md): CP_GROUP_BUILDS as the environment
// says (1: none; unset: MajorDomo's default), spread over this bench's lanes.
figures.group_builds = process.env.CP_GROUP_BUILDS ?? 'default';
await Promise.all([
  stack.start('majordomo', { ...quiet, ...profiled(), CP_GROUP_SPREAD: String(LANES) }),
  stack.start('runner', {
    ...quiet,
    ...profiled(),
    CP_PARALLEL: String(LANES),
    ...(STAGES ? { CP_TASK_STAGES_FILE: stagesFile } : {}),
    PATH,
    CBUILD_LEDGER: ledger.ours,
  }),
  stack.start('fswatcher', { ...quiet, ...profiled() }),
  stack.start('chef', {
    ...quiet,
    ...profiled(),
    CP_CHEF: 'c',
    CP_CHEF_DEFINITION: defFile,
  }),
]);
const mk = stack.dir.join('make');

// The runner's spawners (its python children: one a lane) wait for every task: their children's
// CPU is the compilers'. Found once they are up (started ahead of the first task).
function childrenOf(ppid: number, comm: RegExp): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const ppidOf = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppidOf === ppid && comm.test(name)) out.push(Number(e));
    } catch {
      // gone
    }
  }
  return out;
}
const pids: Record<string, number | undefined> = {
  majordomo: stack.procs.get('majordomo')?.pid,
  chef: stack.procs.get('chef')?.pid,
  runner: stack.procs.get('runner')?.pid,
  fswatcher: stack.procs.get('fswatcher')?.pid,
  'nats-server': stack.nats.pid,
};
const spawnerPids = () => childrenOf(pids.runner!, /python/);
const perfs = perfDir
  ? (['majordomo', 'chef', 'runner', 'fswatcher'] as const).map((name) =>
      spawn(
        'perf',
        [
          'record',
          '-F',
          '499',
          '-g',
          // Sample times on CLOCK_MONOTONIC, as <scenario>_monotonic_us_start/end: a profile is
          // cut to one scenario with `perf report --time <start_s>,<end_s>`.
          '-k',
          'CLOCK_MONOTONIC',
          '-o',
          join(perfDir, `${name}.data`),
          '-p',
          String(pids[name]),
        ],
        { stdio: 'ignore' },
      ),
    )
  : [];

// --- watching MajorDomo --------------------------------------------------------------------------
/**
 * A message's body, JSON-parsed with no schema: this process only watches, and every message it
 * reads (a few thousand in a clean build) costs CPU on the cores the compilers share.
 */
const bodyOf = <T>(data: Uint8Array): T =>
  (JSON.parse(new TextDecoder().decode(data)) as { body: T }).body;
/** A build request or a stored result, and when it was seen (this process's now() clock). */
interface Timed {
  at: number;
  kind: 'request' | 'result';
  ruleId: string;
  buildId: string;
}
/** Build requests as MajorDomo publishes them (the stream is a work queue: read, they are gone). */
const requestsSeen: Timed[] = [];
const requestSub = stack.bus.nc.subscribe(subjects.buildRequestAll(stack.project), {
  callback: (_e, m) => {
    // MajorDomo's fence (a leader's marker on the requests' stream) is no request.
    if (m.subject === subjects.buildFence(stack.project)) return;
    const b = bodyOf<{ ruleId: string; buildId: string }>(m.data);
    requestsSeen.push({ at: now(), kind: 'request', ruleId: b.ruleId, buildId: b.buildId });
  },
});
/**
 * The results chefs stored in a scenario, read from the builds bucket's stream after it, timed
 * by the server's store times. Not followed while the build runs: a copy of each record to this
 * process, decoded with zod (test/src/build-records.ts), was CPU on the cores the compilers
 * share that make does not pay.
 */
const resultsStream = streams.buildRecords(stack.project);
const resultsLastSeq = async () => (await stack.bus.jsm.streams.info(resultsStream)).state.last_seq;
async function resultsSince(after: number): Promise<Timed[]> {
  const last = await resultsLastSeq();
  if (last <= after) return [];
  // performance.now() ↔ the wall clock nats-server stamps messages with (same machine).
  const offset = Date.now() - now();
  const consumer = await stack.bus.js.consumers.get(resultsStream, {
    deliver_policy: DeliverPolicy.StartSequence,
    opt_start_seq: after + 1,
  });
  const out: Timed[] = [];
  const msgs = await consumer.consume();
  for await (const m of msgs) {
    if (m.data.length) {
      // Not a delete or purge marker.
      const b = m.json<{ taskId: string; buildId: string }>();
      const at = Number(m.timestampNanos / 1000n) / 1000 - offset;
      out.push({ at, kind: 'result', ruleId: b.taskId.split(':')[0]!, buildId: b.buildId });
    }
    if (m.seq >= last) break;
  }
  await msgs.close();
  return out;
}
/**
 * The builds of a rule asked for in `events`, each once. A build asked for again with the same
 * inputs (in the warm clean build, the header edit's and the comment edit's builds: their inputs
 * were built earlier in the run) is published twice by MajorDomo, once under its build's message
 * id, which JetStream drops as a duplicate, then under a new one (services/majordomo
 * dispatcher.ts): counted as publishes, as a subscriber sees them, 224 requests for 201 compiles.
 */
const buildsAsked = (events: readonly Timed[], ruleId: string) =>
  new Set(events.filter((e) => e.kind === 'request' && e.ruleId === ruleId).map((e) => e.buildId))
    .size;
/** The last event that changed an artefact's status or hash (not only its pods or mtime). */
let lastArtefactEvent = 0;
let lastArtefactWhat = '';
/** The last artefact event of any kind. */
let lastAnyEvent = 0;
let eventCount = 0;
/** Artefact records announced (a message carries a turn's changes). */
let recordCount = 0;
const artefactsKv = await stack.bus.kv(buckets.artefacts(stack.project), ArtefactRecord);
/** The writes (puts and deletes) MajorDomo made to the artefacts bucket so far: its last sequence. */
const artefactWrites = async () => (await artefactsKv.kv.status()).streamInfo.state.last_seq;
/**
 * The services' KV reads (JetStream direct gets, by bucket): a round trip each. Counted only with
 * CP_CBUILD_KV_READS=1: a copy of every read to this process (2 a compile) costs nats-server and
 * this process CPU on the cores the build shares, which make does not pay.
 */
const kvReads = new Map<string, number>();
const kvReadSub =
  process.env.CP_CBUILD_KV_READS === '1'
    ? stack.bus.nc.subscribe('$JS.API.DIRECT.GET.>', {
        callback: (_e, m) => {
          const bucket = m.subject.split('.')[4]?.replace(/^KV_cp_[^_]+_/, '') ?? '?';
          kvReads.set(bucket, (kvReads.get(bucket) ?? 0) + 1);
        },
      })
    : undefined;
figures.kv_reads_counted = kvReadSub !== undefined;
/**
 * CP_CBUILD_SUBJECTS=1: every message in the project's account counted by subject (keys, inbox
 * tokens and ack tails cut off), for which messages a compile costs; printed per task run for
 * the scenarios that ran tasks. A stored message a consumer takes counts twice (its publish and
 * its delivery carry the same subject); this process's own reads after a scenario (the tasks
 * bucket's STREAM.MSG.GET, for the lanes' busy time) count too. A copy of every message to this
 * process: off by default.
 */
const bySubject = new Map<string, number>();
const subjectOf = (s: string) =>
  s
    .replace(/^(_INBOX|_R_)\..*/, '$1')
    .replace(/^(\$KV\.[^.]+)\..*/, '$1.*')
    .replace(/^(\$JS\.ACK\.[^.]+\.[^.]+)\..*/, '$1.*')
    .replace(/^(\$JS\.API\.DIRECT\.GET\.[^.]+)\..*/, '$1.*')
    .replace(/^(\$JS\.API\.CONSUMER\.MSG\.NEXT\.[^.]+)\..*/, '$1.*');
const subjectSub =
  process.env.CP_CBUILD_SUBJECTS === '1'
    ? stack.bus.nc.subscribe('>', {
        callback: (_e, m) => {
          const k = subjectOf(m.subject);
          bySubject.set(k, (bySubject.get(k) ?? 0) + 1);
        },
      })
    : undefined;
const subjectTables: Array<{ name: string; rows: Array<[string, number]> }> = [];
/**
 * How long the lanes were busy with the tasks that started since `sinceMs` (Date.now()): from
 * when each task took its lane (the local backend's handle.startedAt) to its end in its record's
 * history, read after the scenario. Not the history's `running`: a local task starts before its
 * running record is written, and one that ends first is recorded submitted, running and finished
 * in one write, all at its end (this figure read 308 ms for 201 compiles). Not from a
 * subscription to task.state while it runs: a copy of each task's 3 events to this process.
 */
const tasksKv = await stack.bus.kv(buckets.tasks(stack.project), TaskRecord);
async function laneBusyMs(sinceMs: number): Promise<number> {
  let sum = 0;
  for (const { value } of (await tasksKv.entries()).values()) {
    const at = (s: string) => value.history.find((h) => h.state === s)?.time;
    const end = at('finished') ?? at('failed');
    const startedAt = value.handle?.startedAt;
    const start = typeof startedAt === 'number' ? startedAt : Date.parse(at('running') ?? '');
    if (!end || !(start >= sinceMs)) continue;
    sum += Date.parse(end) - start;
  }
  return sum;
}
/** The fswatcher's file-change messages and the events in them (the watcher's announcements). */
let fileBatches = 0;
let fileEvents = 0;
/** When each batch came (now()): the edit → watcher → MajorDomo split of a scenario's start. */
const batchTimes: number[] = [];
const filesSub = stack.bus.nc.subscribe(subjects.filesChangedAll(stack.project), {
  callback: (_e, m) => {
    fileBatches++;
    batchTimes.push(now());
    try {
      fileEvents += bodyOf<{ events: unknown[] }>(m.data).events.length;
    } catch {
      // Not a message of ours: counted as a batch, no events.
    }
  },
});
const seenSha = new Map<string, string | null>();
/** Artefact events by the status they announce, so far. */
const eventsByStatus = new Map<string, number>();
const seenStatus = new Map<string, string>();
/** When MajorDomo last announced each path's record (any change). */
const seenAt = new Map<string, number>();
/** Paths whose last announced status is neither up to date nor a source's: builds to come. */
const unsettled = new Set<string>();
let wake: (() => void) | undefined;
const artefactSub = stack.bus.nc.subscribe(`cp.${stack.project}.artefact.state`, {
  callback: (_e, m) => {
    try {
      const { records } = bodyOf<{
        records: Array<{ path: string; sha256: string | null; status: string }>;
      }>(m.data);
      const t = now();
      // One turn's changes of MajorDomo, in order.
      for (const b of records) {
        if (seenSha.get(b.path) !== b.sha256 || seenStatus.get(b.path) !== b.status) {
          lastArtefactEvent = t;
          lastArtefactWhat = `${b.path}=${b.status}`;
        }
        seenSha.set(b.path, b.sha256);
        seenStatus.set(b.path, b.status);
        if (b.status === 'up_to_date' || b.status === 'source') unsettled.delete(b.path);
        else unsettled.add(b.path);
        eventsByStatus.set(b.status, (eventsByStatus.get(b.status) ?? 0) + 1);
        seenAt.set(b.path, t);
        recordCount++;
      }
      lastAnyEvent = t;
    } catch {
      return;
    }
    eventCount++;
    wake?.();
  },
});
/** Resolves at the next artefact event, or after `ms`. */
const nextEventOr = (ms: number) =>
  new Promise<void>((r) => {
    const t = setTimeout(r, ms);
    wake = () => {
      clearTimeout(t);
      wake = undefined;
      r();
    };
  });
let statusPolls = 0;
let summaryPolls = 0;
/** The status without its records: cheap for MajorDomo, asked first after each quiet gap. */
const summary = () => {
  summaryPolls++;
  return stack.bus.request('status', { artefacts: false }, StatusReply, { timeoutMs: 30_000 });
};
const status = () => {
  statusPolls++;
  // Every artefact, page by page (a status is a summary unless its records are asked for).
  return statusWithAllArtefacts((req) =>
    stack.bus.request('status', req, StatusReply, { timeoutMs: 30_000 }),
  );
};
const derived = new Set([
  ...objects,
  ...objects.map((o) => o.replace(/\.o$/, '.d')),
  `${DIR}/prog`,
]);
/** The program's bytes on disk, or undefined while it is not there. */
const progOnDisk = () => {
  try {
    return sha256(readFileSync(join(stack.workspace, DIR, 'prog')));
  } catch {
    return undefined;
  }
};
/**
 * Waits until MajorDomo has recorded every edited source's new hash (a removed file, hash null:
 * any announcement of its record since t0), then until a status says idle with every artefact
 * up to date and the program's record matching its bytes on disk. Returns the time of
 * MajorDomo's last artefact event before that status (when it reported the last change), or
 * `t0` when it reported nothing.
 */
async function ourDone(t0: number, edited: Map<string, string | null>, timeoutMs = TIMEOUT_MS) {
  const end = t0 + timeoutMs;
  const before = eventCount;
  const recorded = ([p, h]: [string, string | null]) =>
    h === null ? (seenAt.get(p) ?? 0) > t0 : seenSha.get(p) === h;
  while (![...edited].every(recorded)) {
    if (now() > end) throw new Error(`MajorDomo never recorded the edit\n${stack.logs()}`);
    await nextEventOr(1000);
  }
  let last = 'no status yet';
  for (;;) {
    if (now() > end) throw new Error(`MajorDomo did not settle (${last})\n${stack.logs()}`);
    // Quiet for 40 ms (no artefact event), then ask: a status per gap, not per 50 ms tick; the
    // summary first, and every record only once MajorDomo says it is idle (a status listing
    // 600 records at each gap of a clean build cost MajorDomo and this process more CPU than
    // the answer is worth, on the cores the build shares).
    const mark = eventCount;
    await sleep(40);
    if (eventCount !== mark) continue;
    // Nor while an artefact's last announced status says a build is to come (queued, missing,
    // stale): MajorDomo is not idle then. In a clean build a 40 ms gap came every few compiles,
    // and each asked MajorDomo for its summary (197 a run) on the cores the compilers share.
    // Unless it has all been quiet for 2 s: a failed build, a deleted source, are asked.
    if (unsettled.size > 0 && now() - lastAnyEvent < 2000) {
      await nextEventOr(500);
      continue;
    }
    if (!(await summary()).idle || eventCount !== mark) continue;
    const st = await status();
    const prog = st.artefacts.find((a) => a.path === `${DIR}/prog`);
    const counts = new Map<string, number>();
    for (const a of st.artefacts)
      if (derived.has(a.path)) counts.set(a.status, (counts.get(a.status) ?? 0) + 1);
    last = `idle ${st.idle}; of the ${derived.size} outputs ${[...counts].map(([k, n]) => `${n} ${k}`).join(', ') || 'none'} recorded; program ${prog?.status ?? 'unrecorded'} ${prog?.sha256?.slice(0, 8)}, on disk ${progOnDisk()?.slice(0, 8) ?? 'none'}; file events ${fileEvents}`;
    const ok =
      st.idle &&
      st.artefacts.filter((a) => derived.has(a.path) && a.status === 'up_to_date').length ===
        derived.size &&
      prog?.sha256 !== undefined &&
      prog.sha256 === progOnDisk();
    if (ok && eventCount === mark)
      return eventCount === before ? t0 : Math.max(t0, lastArtefactEvent);
  }
}

// --- measuring -------------------------------------------------------------------------------------
/** Messages each connection sent (in_msgs, as nats-server counts them) and received, by its name. */
const ConnzReply = z.object({
  connections: z.array(
    z
      .object({ name: z.string().optional(), in_msgs: z.number(), out_msgs: z.number() })
      .passthrough(),
  ),
});
const messageCounts = async (): Promise<Map<string, { sent: number; received: number }>> => {
  const res = await fetch(`http://127.0.0.1:${monitorPort}/connz?limit=4096`);
  if (!res.ok) throw new Error(`nats-server /connz answered ${res.status}`);
  const out = new Map<string, { sent: number; received: number }>();
  for (const c of ConnzReply.parse(await res.json()).connections) {
    // A service connects as `<service>@<project>` (bus.ts).
    const name = c.name?.split('@')[0] ?? '(unnamed)';
    const prev = out.get(name) ?? { sent: 0, received: 0 };
    out.set(name, { sent: prev.sent + c.in_msgs, received: prev.received + c.out_msgs });
  }
  return out;
};
/** The services' connections, and this process's own (the stack's bus connects as `e2e`). */
const CONNECTIONS = ['majordomo', 'chef', 'runner', 'fswatcher', 'e2e'] as const;
/**
 * write(2)/writev(2) calls a service's main thread (its event loop) made so far: its socket
 * writes (a turn's frames leave in one: bus turn-batched-transport.ts) and its log lines.
 */
const mainThreadWrites = (pid: number | undefined): number => {
  if (!pid) return Number.NaN;
  const io = readFileSync(`/proc/${pid}/task/${pid}/io`, 'utf8');
  return Number(/^syscw:\s*(\d+)$/m.exec(io)?.[1] ?? Number.NaN);
};
const writesOf = () => Object.fromEntries(SERVICES.map((k) => [k, mainThreadWrites(pids[k])]));
/**
 * The times each service's main thread slept waiting (a wake-up each: see sleepsOf), and
 * nats-server's, all its threads.
 */
const wakesOf = (): Record<string, number> => ({
  ...Object.fromEntries(SERVICES.map((k) => [k, sleepsOf(pids[k])])),
  'nats-server': sleepsOfAllThreads(pids['nats-server']),
});
const SERVICES = ['majordomo', 'chef', 'runner', 'fswatcher'] as const;
/**
 * Messages stored so far in the project's streams (its KV buckets' too): the sum of their last
 * sequences. Each stored message costs its publisher and nats-server far more than a plain one
 * (publishCost).
 */
async function storedSoFar(): Promise<number> {
  let sum = 0;
  for await (const si of stack.bus.jsm.streams.list())
    if (
      si.config.name.includes(`_${stack.project}_`) ||
      si.config.name.endsWith(`_${stack.project}`)
    )
      sum += si.state.last_seq;
  return sum;
}
const msgRows: (string | number)[][] = [];
const offMainRows: (string | number)[][] = [];
const wakeRows: (string | number)[][] = [];
const ledgerCounts = (f: string) => {
  const lines = readFileSync(f, 'utf8').split('\n');
  return {
    compile: lines.filter((l) => l === 'compile').length,
    link: lines.filter((l) => l === 'link').length,
  };
};
/**
 * CPU time (ms) of a process's main thread (its event loop): the rest of the process's is its
 * other threads' (V8's garbage collector and optimising compiler, libuv's pool).
 */
const mainThreadCpuMs = (pid: number | undefined): number =>
  pid ? cpuMsOf(pid, `/proc/${pid}/task/${pid}/stat`) : Number.NaN;
const cpuSnapshot = () => {
  const out: Record<string, number> = {};
  for (const [n, pid] of Object.entries(pids)) out[n] = cpuMsOf(pid);
  for (const k of SERVICES) out[`${k}_main_thread`] = mainThreadCpuMs(pids[k]);
  const spawners = spawnerPids();
  out.compilers = spawners.length
    ? spawners.reduce((a, pid) => a + childrenCpuMsOf(pid), 0)
    : Number.NaN;
  out.bench = process.cpuUsage().user / 1000 + process.cpuUsage().system / 1000;
  return out;
};
const runMake = async (
  targets: string[] = [],
): Promise<{ ms: number; cpuMs: number; code: number | null }> => {
  const c0 = childrenCpuMsOf(process.pid);
  const t0 = now();
  const child: ChildProcess = spawn('make', ['-j2', '-s', ...targets], {
    cwd: mk,
    env: { ...process.env, PATH, CBUILD_LEDGER: ledger.make },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  child.stderr?.on('data', (d) => {
    err += d;
  });
  const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  const ms = now() - t0;
  if (code !== 0) throw new Error(`make failed (${code}): ${err.slice(0, 2000)}`);
  return { ms, cpuMs: childrenCpuMsOf(process.pid) - c0, code };
};
const progOutput = async (root: string) => {
  const r = await runCommand(join(root, DIR, 'prog'), [], { cwd: root, timeoutMs: 10_000 });
  if (r.code !== 0) throw new Error(`${root}/${DIR}/prog exited ${r.code}: ${r.stderr}`);
  return r.stdout;
};
const writeTree = (root: string, files: Iterable<[string, string]>) => {
  for (const [p, text] of files) {
    mkdirSync(join(root, p, '..'), { recursive: true });
    writeFileSync(join(root, p), text);
  }
};

interface Scenario {
  readonly name: string;
  readonly what: string;
  /** The files to (re)write, in both trees. Empty: nothing changes. */
  readonly edit: () => Map<string, string>;
  /** Every output removed first: ours by unlinking them, make's by `make clean`. */
  readonly clean?: true;
}
const edited = (path: string, from: string, to: string) => () => {
  const text = tree.get(path)!;
  if (!text.includes(from)) throw new Error(`${path} has no ${from}`);
  const next = text.replace(from, to);
  tree.set(path, next);
  return new Map([[path, next]]);
};
const HK = 7 % HEADERS;
const HDR = `${DIR}/h${pad2(HK)}.h`;
const BODY = Math.floor(SOURCES * 0.21); // s042 of 200
const COMMENT = Math.floor(SOURCES * 0.685); // s137 of 200
const includers = Array.from({ length: SOURCES }, (_, i) => i).filter((i) =>
  headersOf(i, HEADERS).includes(HK),
).length;
figures.header_edit_includers = includers;
const scenarios: Scenario[] = [
  { name: 'clean', what: 'clean build', edit: () => new Map(tree) },
  { name: 'noop', what: 'no-op (nothing changed)', edit: () => new Map() },
  {
    name: 'body',
    what: `one-line body edit (s${pad3(BODY)}.c)`,
    edit: edited(`${DIR}/s${pad3(BODY)}.c`, 'return acc + 1u;', 'return acc + 2u;'),
  },
  {
    name: 'header',
    what: `header edit (h${pad2(HK)}.h, ${includers} includers)`,
    edit: edited(
      HDR,
      `#define H${pad2(HK)}_SCALE ${HK * 2 + 3}u`,
      `#define H${pad2(HK)}_SCALE ${HK * 2 + 4}u`,
    ),
  },
  {
    name: 'comment',
    what: `comment-only edit (s${pad3(COMMENT)}.c)`,
    edit: edited(
      `${DIR}/s${pad3(COMMENT)}.c`,
      `/* body comment ${COMMENT} */`,
      `/* body comment ${COMMENT}, edited */`,
    ),
  },
  // Last, so the scenarios above follow a cold clean build as they always did.
  {
    name: 'warm_clean',
    what: 'clean build again, same stack (warm)',
    edit: () => new Map(),
    clean: true,
  },
];
// CP_CBUILD_WARM_ROUNDS=N (default 1): N clean builds in the warmed stack, then the header edit
// undone in it (header_warm): whether the services' CPU per task falls as their JIT settles (a
// perf profile of the chef's first minute had ~20 % of it in V8's optimising compiler). It did
// not: 14.7 / 17.0 / 17.4 / 15.1 ms a task in four warm clean builds (load 3.5-5.5).
const WARM_ROUNDS = Number(process.env.CP_CBUILD_WARM_ROUNDS ?? 1);
figures.warm_rounds = WARM_ROUNDS;
for (let k = 2; k <= WARM_ROUNDS; k++)
  scenarios.push({
    name: `warm_clean_${k}`,
    what: `clean build again, same stack (warm, ${k})`,
    edit: () => new Map(),
    clean: true,
  });
if (WARM_ROUNDS > 1)
  scenarios.push({
    name: 'header_warm',
    what: `header edit undone, same stack (h${pad2(HK)}.h)`,
    edit: edited(
      HDR,
      `#define H${pad2(HK)}_SCALE ${HK * 2 + 4}u`,
      `#define H${pad2(HK)}_SCALE ${HK * 2 + 3}u`,
    ),
  });

figures.loadavg_1m_start = loadavg()[0]!;
// Before any scenario, on the machine as it is: see idleWakeCostUs.
const wakeCostUs = idleWakeCostUs();
figures.idle_wake_cost_us = wakeCostUs;
// What a stored message and a plain one cost, one at a time, on a nats-server of their own.
const cost = await publishCost();
const storedCost = cost.stored;
Object.assign(figures, {
  stored_publish_client_cpu_us: cost.stored.clientUs,
  stored_publish_server_cpu_us: cost.stored.serverUs,
  plain_publish_client_cpu_us: cost.core.clientUs,
  plain_publish_server_cpu_us: cost.core.serverUs,
  publish_probe_idle_wake_us: cost.idleUs,
});
const rows: (string | number)[][] = [];
const cpuRows: (string | number)[][] = [];
const stageTables: Array<{ name: string; rows: (string | number)[][] }> = [];
let stagesRead = 0;
for (const sc of scenarios) {
  const files = sc.edit();
  // ComputePods: the edit, then until MajorDomo says the program is up to date and idle.
  const l0 = ledgerCounts(ledger.ours);
  const cpu0 = cpuSnapshot();
  const requests0 = requestsSeen.length;
  const results0 = await resultsLastSeq();
  const wall0 = Date.now();
  const polls0 = statusPolls;
  const summaries0 = summaryPolls;
  const events0 = eventCount;
  const records0 = recordCount;
  const byStatus0 = new Map(eventsByStatus);
  const [batches0, fileEvents0] = [fileBatches, fileEvents];
  const kvReads0 = new Map(kvReads);
  const bySubject0 = new Map(bySubject);
  const writes0 = await artefactWrites();
  const msgs0 = await messageCounts();
  const syscw0 = writesOf();
  const wakes0 = wakesOf();
  const stored0 = await storedSoFar();
  // CLOCK_MONOTONIC, as V8's profiles time their samples: a service's CP_STACK_NODE_ARGS=--cpu-prof
  // profile is cut to this scenario by these two figures.
  figures[`${sc.name}_monotonic_us_start`] = Number(process.hrtime.bigint() / 1000n);
  const t0 = now();
  let oursMs: number;
  if (sc.clean) {
    // Every output unlinked; done once MajorDomo has announced the program's record since and
    // everything is up to date again.
    for (const p of derived) rmSync(join(stack.workspace, p), { force: true });
    oursMs = (await ourDone(t0, new Map([[`${DIR}/prog`, null]]))) - t0;
  } else if (files.size === 0) {
    // Nothing changed: the analogue of running make is asking for the program.
    const reply = await stack.bus.request(
      'build',
      { path: `${DIR}/prog`, force: false },
      z.object({ accepted: z.boolean(), status: z.string() }).passthrough(),
    );
    const replied = now();
    figures.noop_ours_build_reply = `${reply.accepted ? 'accepted' : 'refused'}: ${reply.status}`;
    // Then confirm nothing started (not timed: the quiet wait is the bench's, not MajorDomo's).
    const done = await ourDone(t0, new Map());
    oursMs = (done === t0 ? replied : Math.max(done, replied)) - t0;
  } else {
    writeTree(stack.workspace, files);
    oursMs = (await ourDone(t0, new Map([...files].map(([p, t]) => [p, sha256(t)])))) - t0;
  }
  const cpu1 = cpuSnapshot();
  figures[`${sc.name}_monotonic_us_end`] = Number(process.hrtime.bigint() / 1000n);
  const msgs1 = await messageCounts();
  const syscw1 = writesOf();
  const wakes1 = wakesOf();
  const stored1 = await storedSoFar();
  // The tasks whose end the runner recorded in this scenario: where their time went.
  const st = readStages(stagesFile, stagesRead);
  stagesRead = st.size;
  if (st.lines.length > 1) {
    const sum = stageSummary(st.lines, `${sc.name}_stage`);
    stageTables.push({ name: sc.name, rows: sum.rows });
    Object.assign(figures, sum.figures);
  }
  figures[`${sc.name}_ours_last_change`] = files.size === 0 ? '' : lastArtefactWhat;
  figures[`${sc.name}_ours_last_any_event_ms`] = files.size === 0 ? 0 : lastAnyEvent - t0;
  figures[`${sc.name}_status_polls`] = statusPolls - polls0;
  figures[`${sc.name}_summary_polls`] = summaryPolls - summaries0;
  // Each artefact event is a record change MajorDomo published (the messages: one a turn of
  // its event loop, each with that turn's changes); the writes, those it also wrote to its
  // bucket (a record only queued is not written: a restart plans it again).
  figures[`${sc.name}_artefact_events`] = recordCount - records0;
  figures[`${sc.name}_artefact_messages`] = eventCount - events0;
  figures[`${sc.name}_artefact_writes`] = (await artefactWrites()) - writes0;
  for (const [status, n] of eventsByStatus)
    if (n !== byStatus0.get(status))
      figures[`${sc.name}_artefact_events_${status}`] = n - (byStatus0.get(status) ?? 0);
  // What the fswatcher announced (a build's outputs that MajorDomo recorded from the chef's
  // report are not: services/fswatcher reports.ts).
  // The KV reads the services made (direct gets: a chef's of its build's result and task
  // records, MajorDomo's), by bucket.
  if (kvReadSub) {
    let reads = 0;
    for (const [bucket, n] of kvReads) {
      figures[`${sc.name}_kv_reads_${bucket}`] = n - (kvReads0.get(bucket) ?? 0);
      reads += n - (kvReads0.get(bucket) ?? 0);
    }
    figures[`${sc.name}_kv_reads`] = reads;
  }
  figures[`${sc.name}_file_batches`] = fileBatches - batches0;
  figures[`${sc.name}_file_events`] = fileEvents - fileEvents0;
  const l1 = ledgerCounts(ledger.ours);
  // Where the time went: edit → first request, → link request, → last result; and how busy
  // the lanes were (the builds' own durations over lanes × wall).
  const tl = [...requestsSeen.slice(requests0), ...(await resultsSince(results0))].sort(
    (x, y) => x.at - y.at,
  );
  const firstReq = tl.find((e) => e.kind === 'request');
  const linkReq = tl.find((e) => e.kind === 'request' && e.ruleId === 'link');
  const lastResult = tl.filter((e) => e.kind === 'result').at(-1);
  // The compile results' last before the link was asked for: from there to the link request
  // is MajorDomo's (the result taken, the link planned, its request sent).
  const lastCc = linkReq
    ? tl.filter((e) => e.kind === 'result' && e.ruleId === 'cc' && e.at <= linkReq.at).at(-1)
    : undefined;
  // A task's run as the runner reported it (running → finished), not the chef's build time.
  const busyMs = await laneBusyMs(wall0);
  Object.assign(figures, {
    // The fswatcher's first batch of the scenario, as this bench heard it (the edit and the
    // watcher's part); from there to the first request is MajorDomo's.
    [`${sc.name}_ours_first_files_ms`]: (batchTimes.find((t) => t >= t0) ?? Number.NaN) - t0,
    [`${sc.name}_ours_first_request_ms`]: firstReq ? firstReq.at - t0 : Number.NaN,
    [`${sc.name}_ours_link_request_ms`]: linkReq ? linkReq.at - t0 : Number.NaN,
    [`${sc.name}_ours_last_result_ms`]: lastResult ? lastResult.at - t0 : Number.NaN,
    [`${sc.name}_ours_last_cc_result_ms`]: lastCc ? lastCc.at - t0 : Number.NaN,
    [`${sc.name}_ours_build_ms_sum`]: busyMs,
    [`${sc.name}_ours_lane_occupancy`]: oursMs > 0 ? busyMs / (LANES * oursMs) : Number.NaN,
  });
  if (subjectSub) {
    const runs = l1.compile - l0.compile + l1.link - l0.link;
    const rows: Array<[string, number]> = [];
    for (const [k, n] of bySubject)
      if (n !== bySubject0.get(k)) rows.push([k, n - (bySubject0.get(k) ?? 0)]);
    if (runs > 0)
      subjectTables.push({
        name: sc.name,
        rows: rows.sort((a, b) => b[1] - a[1]).map(([k, n]) => [k, n / runs]),
      });
  }
  const ours = {
    compile: l1.compile - l0.compile,
    link: l1.link - l0.link,
    ccRequests: buildsAsked(tl, 'cc'),
    linkRequests: buildsAsked(tl, 'link'),
  };

  // make -j2 on its own copy: the same edit, then make.
  if (sc.name === 'clean') {
    mkdirSync(mk, { recursive: true });
    writeFileSync(join(mk, 'Makefile'), makefile);
  }
  const m0 = ledgerCounts(ledger.make);
  const tm0 = now();
  // make's clean is timed with its build, as our removal is with ours.
  const cleaned = sc.clean ? (await runMake(['clean'])).cpuMs : 0;
  writeTree(mk, files);
  const made = await runMake();
  made.cpuMs += cleaned;
  const makeMs = now() - tm0;
  const m1 = ledgerCounts(ledger.make);
  const mkc = { compile: m1.compile - m0.compile, link: m1.link - m0.link };

  const [outOurs, outMake] = await Promise.all([progOutput(stack.workspace), progOutput(mk)]);
  const sameOutput = outOurs === outMake;
  const sameBinary = readFileSync(join(stack.workspace, DIR, 'prog')).equals(
    readFileSync(join(mk, DIR, 'prog')),
  );
  const ratio = oursMs / makeMs;
  rows.push([
    sc.what,
    ours.compile,
    ours.link,
    mkc.compile,
    mkc.link,
    oursMs,
    makeMs,
    ratio,
    sameOutput ? 'yes' : 'NO',
  ]);
  const cpu: Record<string, number> = {};
  for (const k of Object.keys(cpu1)) cpu[k] = cpu1[k]! - cpu0[k]!;
  const servicesMs = ['majordomo', 'chef', 'runner', 'fswatcher', 'nats-server']
    .map((k) => cpu[k]!)
    .reduce((a, b) => a + b, 0);
  cpuRows.push([
    sc.name,
    cpu.majordomo!,
    cpu.chef!,
    cpu.runner!,
    cpu.fswatcher!,
    cpu['nats-server']!,
    servicesMs,
    cpu.compilers!,
    made.cpuMs,
    figures[`${sc.name}_artefact_events`] as number,
    figures[`${sc.name}_artefact_writes`] as number,
    `${figures[`${sc.name}_file_batches`]}/${figures[`${sc.name}_file_events`]}`,
  ]);
  Object.assign(figures, {
    [`${sc.name}_ours_ms`]: oursMs,
    [`${sc.name}_make_ms`]: makeMs,
    [`${sc.name}_ratio`]: ratio,
    [`${sc.name}_ours_compiles`]: ours.compile,
    [`${sc.name}_ours_links`]: ours.link,
    [`${sc.name}_ours_cc_requests`]: ours.ccRequests,
    [`${sc.name}_ours_link_requests`]: ours.linkRequests,
    [`${sc.name}_make_compiles`]: mkc.compile,
    [`${sc.name}_make_links`]: mkc.link,
    [`${sc.name}_same_output`]: sameOutput,
    [`${sc.name}_same_binary`]: sameBinary,
    [`${sc.name}_cpu_ms_majordomo`]: cpu.majordomo!,
    [`${sc.name}_cpu_ms_chef`]: cpu.chef!,
    [`${sc.name}_cpu_ms_runner`]: cpu.runner!,
    [`${sc.name}_cpu_ms_fswatcher`]: cpu.fswatcher!,
    [`${sc.name}_cpu_ms_nats_server`]: cpu['nats-server']!,
    [`${sc.name}_cpu_ms_services_total`]: servicesMs,
    [`${sc.name}_cpu_ms_ours_compilers`]: cpu.compilers!,
    [`${sc.name}_cpu_ms_make_and_compilers`]: made.cpuMs,
    [`${sc.name}_cpu_ms_bench`]: cpu.bench!,
  });
  // Per task run (compiles and links), each service's CPU and the compilers': what a compile
  // costs beside the compiler itself.
  const tasks = ours.compile + ours.link;
  const perTask = ['majordomo', 'chef', 'runner', 'fswatcher', 'nats-server', 'compilers'];
  if (tasks > 0) {
    for (const k of perTask)
      figures[`${sc.name}_cpu_ms_per_task_${k.replace('-', '_')}`] = cpu[k]! / tasks;
    figures[`${sc.name}_cpu_ms_per_task_services_total`] = servicesMs / tasks;
  }
  // What the goal leaves the services and nats-server, a task run (an extrapolation): at the
  // goal's wall time, with this run's compilers' CPU and its cores as busy as in this run, the CPU
  // left over; and how many times less than this run's that is (NaN: nothing is left).
  const goal = GOALS[sc.name];
  if (goal !== undefined && tasks > 0 && oursMs > 0) {
    const cores = availableParallelism();
    const busy = (servicesMs + cpu.compilers!) / (oursMs * cores);
    const budget = (goal * makeMs * cores * busy - cpu.compilers!) / tasks;
    figures[`${sc.name}_cores_busy`] = busy;
    figures[`${sc.name}_goal_services_cpu_ms_per_task`] = budget;
    figures[`${sc.name}_goal_services_cpu_cut`] =
      budget > 0 ? servicesMs / tasks / budget : Number.NaN;
  }
  // The messages each service sent and received (nats-server's count), per task run.
  const msgRow: (string | number)[] = [sc.name];
  for (const conn of CONNECTIONS) {
    const k = conn === 'e2e' ? 'bench' : conn;
    const [a, b] = [msgs0.get(conn), msgs1.get(conn)];
    const sent = (b?.sent ?? 0) - (a?.sent ?? 0);
    const received = (b?.received ?? 0) - (a?.received ?? 0);
    figures[`${sc.name}_msgs_sent_${k}`] = sent;
    figures[`${sc.name}_msgs_received_${k}`] = received;
    if (tasks > 0) {
      figures[`${sc.name}_msgs_sent_per_task_${k}`] = sent / tasks;
      figures[`${sc.name}_msgs_received_per_task_${k}`] = received / tasks;
    }
    msgRow.push(tasks > 0 ? `${(sent / tasks).toFixed(2)}/${(received / tasks).toFixed(2)}` : '');
  }
  for (const k of SERVICES) {
    const w = syscw1[k]! - syscw0[k]!;
    figures[`${sc.name}_writes_${k}`] = w;
    if (tasks > 0) figures[`${sc.name}_writes_per_task_${k}`] = w / tasks;
    msgRow.push(tasks > 0 ? (w / tasks).toFixed(2) : '');
    // Off the main thread: V8's background threads (optimising compiler, GC) and libuv's pool.
    figures[`${sc.name}_cpu_ms_off_main_thread_${k}`] = cpu[k]! - cpu[`${k}_main_thread`]!;
  }
  // Wake-ups per task run: each costs at least an idle wake-up's CPU (idle_wake_cost_us).
  const wakeRow: (string | number)[] = [sc.name];
  let serviceWakes = 0;
  for (const k of [...SERVICES, 'nats-server']) {
    const n = wakes1[k]! - wakes0[k]!;
    const key = k.replace('-', '_');
    figures[`${sc.name}_wakes_${key}`] = n;
    if (tasks > 0) figures[`${sc.name}_wakes_per_task_${key}`] = n / tasks;
    if (k !== 'nats-server') serviceWakes += n;
    wakeRow.push(tasks > 0 ? (n / tasks).toFixed(1) : '');
  }
  const stored = stored1 - stored0;
  figures[`${sc.name}_stored_messages`] = stored;
  if (tasks > 0) {
    const storedEstimateMs =
      ((stored / tasks) * (storedCost.clientUs + storedCost.serverUs)) / 1000;
    figures[`${sc.name}_stored_messages_per_task`] = stored / tasks;
    figures[`${sc.name}_stored_estimate_cpu_ms_per_task`] = storedEstimateMs;
    figures[`${sc.name}_wakes_per_task_services_total`] = serviceWakes / tasks;
    figures[`${sc.name}_wake_floor_cpu_ms_per_task_services`] =
      (serviceWakes / tasks) * (wakeCostUs / 1000);
    wakeRow.push(
      (serviceWakes / tasks).toFixed(1),
      ((serviceWakes / tasks) * (wakeCostUs / 1000)).toFixed(2),
      (stored / tasks).toFixed(1),
      storedEstimateMs.toFixed(2),
      (servicesMs / tasks).toFixed(2),
    );
    wakeRows.push(wakeRow);
  }
  offMainRows.push([
    sc.name,
    ...SERVICES.map((k) => `${cpu[k]! - cpu[`${k}_main_thread`]!}/${cpu[k]!}`),
  ]);
  msgRows.push(msgRow);
  // Let the fswatcher see make-free quiet and the services' heartbeats pass before the next.
  await sleep(500);
}
figures.loadavg_1m_end = loadavg()[0]!;
figures.status_polls = statusPolls;
// What one of the bench's status polls costs MajorDomo (its reply lists every artefact), to
// subtract from its CPU above: 20 polls with nothing going on.
{
  const c0 = cpuMsOf(pids.majordomo);
  for (let i = 0; i < 20; i++) await status();
  figures.status_poll_majordomo_cpu_ms = (cpuMsOf(pids.majordomo) - c0) / 20;
}
// The goals are the builtin rules' (one compile a request); grouped rules only bound batching.
if (GROUP === 1) {
  figures.goal_clean_le_1_1 = (figures.clean_ratio as number) <= 1.1;
  figures.goal_header_le_1_0 = (figures.header_ratio as number) <= 1.0;
  figures.goal_warm_clean_le_1_1 = (figures.warm_clean_ratio as number) <= 1.1;
  figures.goal_comment_relinks_nothing = figures.comment_ours_links === 0;
}

table(
  `C project: ${SOURCES + 1} sources, ${HEADERS} headers, one program; ComputePods (${GROUP > 1 ? `rules of ${GROUP} compiles in a row, CP_CBUILD_GROUP: not the goals' setup` : "C chef's rules"}, MajorDomo CP_GROUP_BUILDS=${figures.group_builds}, runner CP_PARALLEL=${LANES}) vs make -j${LANES}`,
  [
    'scenario',
    'ours cc',
    'ours link',
    'make cc',
    'make link',
    'ours ms',
    'make ms',
    'ours/make',
    'same output',
  ],
  rows,
);
table(
  'CPU ms per scenario (utime+stime from /proc; compilers: the tasks the runner spawned, make: make and its compilers), the artefact records MajorDomo announced and wrote, and the file changes the fswatcher announced (batches/events)',
  [
    'scenario',
    'majordomo',
    'chef',
    'runner',
    'fswatcher',
    'nats-server',
    'services total',
    'our compilers',
    'make + compilers',
    'artefact events',
    'artefact KV writes',
    'file batches/events',
  ],
  cpuRows,
);
table(
  'where our time went (ms from the edit; last cc result: the last compile result before the link request; lanes busy: task run time over lanes × wall)',
  [
    'scenario',
    'first request',
    'last cc result',
    'link request',
    'last result',
    'done',
    'lanes busy',
  ],
  scenarios.map((sc) => [
    sc.name,
    figures[`${sc.name}_ours_first_request_ms`] as number,
    figures[`${sc.name}_ours_last_cc_result_ms`] as number,
    figures[`${sc.name}_ours_link_request_ms`] as number,
    figures[`${sc.name}_ours_last_result_ms`] as number,
    figures[`${sc.name}_ours_ms`] as number,
    figures[`${sc.name}_ours_lane_occupancy`] as number,
  ]),
);
table(
  "messages per task run, sent/received, as nats-server counts them per connection (/connz; received includes the replies to requests and KV reads), and write(2)/writev(2) calls per task run of each service's main thread (/proc/<pid>/task/<pid>/io syscw: socket writes and log lines)",
  [
    'scenario',
    ...CONNECTIONS.map((c) => (c === 'e2e' ? 'this bench' : c)),
    ...SERVICES.map((k) => `${k} writes`),
  ],
  msgRows.filter((r) => r.slice(1).some((c) => c !== '')),
);
table(
  "CPU ms off each service's main thread / in all (/proc/<pid>/task/<pid>/stat against /proc/<pid>/stat): V8's background threads (its optimising compiler, its garbage collector) and libuv's pool",
  ['scenario', ...SERVICES],
  offMainRows,
);
table(
  `wake-ups per task run: times each main thread (nats-server: every thread) slept waiting (voluntary context switches, /proc/<pid>/task/<tid>/status); an idle Node.js wake-up costs ${wakeCostUs.toFixed(0)} µs of CPU here (a 2 ms timer in a child node, idle_wake_cost_us), so the services' wake-ups alone cost "wake floor" ms of CPU a task; the messages stored in the project's streams and buckets a task, each costing ${(storedCost.clientUs + storedCost.serverUs).toFixed(0)} µs of CPU to its publisher and nats-server (${storedCost.clientUs.toFixed(0)} + ${storedCost.serverUs.toFixed(0)}; a plain publish ${(cost.core.clientUs + cost.core.serverUs).toFixed(0)}: a probe, one message every 2 ms, on a nats-server of its own), "stored est." ms (an estimate: a service's stored messages and acks often share a wake-up, and a task.state event is stored unacknowledged); against the services' and nats-server's CPU a task in all`,
  [
    'scenario',
    ...SERVICES,
    'nats-server',
    'services',
    'wake floor ms',
    'stored',
    'stored est. ms',
    'cpu ms with nats-server',
  ],
  wakeRows,
);
if (!STAGES)
  console.log(
    "runner stages not recorded (CP_BENCH_STAGES=1 records them: the runner's CP_TASK_STAGES_FILE, a JSON line per task, at a cost to its CPU)",
  );
for (const t of stageTables)
  table(
    `${t.name}: where a task's time goes in the runner, ms per task (CP_TASK_STAGES_FILE; "lane": while it holds one of the ${LANES} lanes)`,
    ['stage', 'tasks', 'mean', 'p50', 'p90', 'lane'],
    t.rows,
  );
console.log(
  `load average (1 min) at start ${figures.loadavg_1m_start}, at end ${figures.loadavg_1m_end}`,
);
const budget = (name: string) => {
  const left = figures[`${name}_goal_services_cpu_ms_per_task`] as number;
  const now = `${name}: ${(figures[`${name}_cpu_ms_per_task_services_total`] as number).toFixed(1)} ms`;
  return left > 0
    ? `${now}, at the goal ${left.toFixed(1)} ms (${(figures[`${name}_goal_services_cpu_cut`] as number).toFixed(1)}× less)`
    : `${now}, at the goal none (our compilers' CPU alone, the cores as busy, passes the goal's time by ${(-left).toFixed(1)} ms a task run)`;
};
console.log(
  `the services' and nats-server's CPU a task run, now and what the goal would leave them (extrapolated: the same compilers' CPU, the cores as busy as in the run): ${['clean', 'warm_clean', 'header'].map(budget).join('; ')}`,
);
console.log(
  `goals: clean ≤ 1.1× make (${(figures.clean_ratio as number).toFixed(2)} cold, ${(figures.warm_clean_ratio as number).toFixed(2)} warm), header ≤ 1.0× (${(figures.header_ratio as number).toFixed(2)}), comment relinks nothing (${figures.comment_ours_links} links)`,
);

await Promise.all(
  perfs.map((p) => {
    p.kill('SIGINT');
    return new Promise((r) => p.on('exit', r));
  }),
);
artefactSub.unsubscribe();
requestSub.unsubscribe();
filesSub.unsubscribe();
kvReadSub?.unsubscribe();
await stack[Symbol.asyncDispose]();
for (const t of subjectTables)
  table(
    `${t.name}: messages per task run in the project's account, by subject (CP_CBUILD_SUBJECTS=1)`,
    ['subject', 'per task'],
    t.rows.filter(([, n]) => n >= 0.05),
  );
subjectSub?.unsubscribe();
finish('cbuild', figures);
process.exit(0);
