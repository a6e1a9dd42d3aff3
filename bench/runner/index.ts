// pnpm bench runner: no-op tasks per second through NATS and the local runner (against
// `xargs -P2 true`), cold (the runner's first batch) and warm (its next batch), the latency of one task at a time through the same path (stage by stage,
// from the task events), and tiny tasks on a real single-node SLURM, batched against one sbatch
// per task; for the local paths, the CPU each costs per task (the runner's process, the spawner,
// the tasks, the nats-server, the client publishing the tasks: ./client.ts) against xargs', which
// bounds the rate on 2 cores whatever the load.
// Sizes: CP_BENCH_TASKS (local, default 2000), CP_BENCH_LATENCY_TASKS (one at a time,
// default 100), CP_BENCH_SLURM_TASKS (batched, 1000), CP_BENCH_SLURM_SINGLE (one job each,
// default 200; fewer than the batched count is extrapolated with its fixed costs apart:
// ./slurm-single.ts);
// CP_BENCH_STAGES=FILE has the runner write its stage times there (CP_TASK_STAGES_FILE) and reports
// where a lane's time goes in the warm batch (./lanes.ts; those runs' figures carry its cost);
// CP_BENCH_RUNNER_PROFILE=FILE writes the runner process's CPU profile of the warm batch there
// (.cpuprofile; that run's warm figures carry the profiler's cost), CP_BENCH_SPACED_PROFILE=FILE
// of the spaced run: CP_BENCH_SPACED_TASKS (default 200) tasks one at a time, each running
// CP_BENCH_SPACED_COMMAND (default `sleep 0.04`, about a small compile), as a chef's compiles come;
// CP_BENCH_INTAKE: the runner's intake (default 512); CP_BENCH_SKIP_SLURM skips SLURM; CP_BENCH_ENV_ROUNDS: task-environment runs (./environment.ts, default 20);
// CP_BENCH_K8S_ROUNDS / CP_BENCH_K8S_BATCH: Kubernetes stand-in runs (./kubernetes.ts, default 20 / 40).
import { fork, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { availableParallelism, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Bus, quietLogger, tuneV8 } from '@computepods/bus';
import {
  type BackendContext,
  Executor,
  type ExecutorHooks,
  LocalBackend,
  SlurmBackend,
  SudoHost,
} from '@computepods/executors';
import {
  buckets,
  type LocalResource,
  parseResource,
  type SlurmSudoResource,
  streams,
  subjects,
  type TaskSubmitted,
} from '@computepods/protocol';
import { startRunner } from '@computepods/runner';
import { ensureSystemUser, NatsServer, Slurm, TempDir } from '@computepods/testkit';
import { readStages } from '../cbuild/stages.js';
import { childrenCpuMsOf, cpuMsOf, writeSyscallsOfThisThread } from '../lib/cpu.js';
import { finish, percentile, table } from '../lib/report.js';
import { environmentCosts } from './environment.js';
import { kubernetesCosts } from './kubernetes.js';
import { laneSummary } from './lanes.js';
import { oneSbatchPerTask } from './slurm-single.js';

// The runner runs in this process, not through startService: V8 is tuned as startService tunes a
// deployed runner's (CP_V8_INTERRUPT_BUDGET), before any of its code is hot.
const V8_BUDGET = tuneV8();
const N = Number(process.env.CP_BENCH_TASKS ?? 2000);
const LATENCY_N = Number(process.env.CP_BENCH_LATENCY_TASKS ?? 100);
const SLURM_N = Number(process.env.CP_BENCH_SLURM_TASKS ?? 1000);
// One job per task takes about 1.1 s of SLURM time each here: 200 measured, the rest stated as
// the 1-task run's fixed costs + per task x (count - 1) (slurm-single.ts), unless asked for more.
const SLURM_SINGLE = Number(process.env.CP_BENCH_SLURM_SINGLE ?? Math.min(SLURM_N, 200));
const PARALLEL = 2;
const STAGES_FILE = process.env.CP_BENCH_STAGES;
/** Tasks sent one at a time after the warm batch (CP_BENCH_SPACED_TASKS, default 200; 0: none). */
const SPACED_N = Number(process.env.CP_BENCH_SPACED_TASKS ?? 200);
/** What each spaced task runs: about a small compile's time (CP_BENCH_SPACED_COMMAND). */
const SPACED_COMMAND = process.env.CP_BENCH_SPACED_COMMAND ?? 'sleep 0.04';
/** The runner's CP_RUNNER_INTAKE: tasks taken from the queue at once (CP_BENCH_INTAKE). */
const INTAKE = Number(process.env.CP_BENCH_INTAKE ?? 512);
const tmp = new TempDir('cp-bench-runner-');
chmodSync(tmp.path, 0o755);
// Its task folders, environments and staging trees (~70 MB a run) go with it.
process.on('exit', () => tmp[Symbol.dispose]());
const logger = quietLogger('bench');
const noHooks: ExecutorHooks = { record: async () => {}, publish: () => {} };
const secs = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e9;
const python = { default_version: '3.12', versions: { '3.12': '/usr/bin/python3' } };

function task(i: number, resource: string, command = 'true'): TaskSubmitted {
  return { taskId: `b${i}-${resource}`, resource, command, cwd: tmp.path, env: {}, gpu: false };
}

/**
 * Where a run's CPU went, in ms per task: this process (the runner, or the executor), the
 * spawner co-process, the tasks it started (their wrappers included), the nats-server, and the
 * client process that published the tasks (./client.ts; none for the executor alone).
 */
interface CpuPerTask {
  node: number;
  spawner: number;
  tasks: number;
  server: number;
  client: number;
}
/** The spawners' CPU and their tasks' (the local backend has one spawner a lane, up to four). */
const cpuNow = (spawnerPids: readonly number[], serverPid?: number, clientPid?: number) => {
  const u = process.cpuUsage();
  const sum = (of: (pid: number) => number) => spawnerPids.reduce((a, pid) => a + of(pid), 0);
  return {
    node: (u.user + u.system) / 1000,
    spawner: spawnerPids.length ? sum(cpuMsOf) : Number.NaN,
    tasks: spawnerPids.length ? sum(childrenCpuMsOf) : Number.NaN,
    server: serverPid ? cpuMsOf(serverPid) : 0,
    client: clientPid ? cpuMsOf(clientPid) : 0,
  };
};
const cpuPerTask = (a: CpuPerTask, b: CpuPerTask, n: number): CpuPerTask => ({
  node: (b.node - a.node) / n,
  spawner: (b.spawner - a.spawner) / n,
  tasks: (b.tasks - a.tasks) / n,
  server: (b.server - a.server) / n,
  client: (b.client - a.client) / n,
});
const cpuTotal = (c: CpuPerTask) => c.node + c.spawner + c.tasks + c.server + c.client;

// --- 1. xargs baseline ----------------------------------------------------------------------
/** Wall seconds, and CPU ms per task of xargs and the processes it ran. */
let xargsCpuMsPerTask = Number.NaN;
function xargs(n: number): number {
  const c0 = childrenCpuMsOf(process.pid);
  const t0 = process.hrtime.bigint();
  const r = spawnSync('sh', ['-c', `seq ${n} | xargs -P${PARALLEL} -n1 true`]);
  if (r.status !== 0) throw new Error(`xargs failed: ${r.stderr}`);
  const wall = secs(t0);
  xargsCpuMsPerTask = (childrenCpuMsOf(process.pid) - c0) / n;
  return wall;
}

// --- 2. executor alone, then NATS + runner service ----------------------------------------------
function localResource(dir: string): LocalResource {
  return parseResource({
    type: 'local',
    name: 'local',
    id: 'local',
    jobs_local_dir: dir,
    jobs_runner_config: { parallel_tasks_per_job: PARALLEL },
    jobs_poll_interval: 0,
    tasks_local_dir: tmp.join('tasks'),
    tasks_python_config: python,
    tasks_pixi_config: {},
  }) as LocalResource;
}

let executorCpu: CpuPerTask | undefined;
async function executorOnly(n: number): Promise<number> {
  const makeBackend = (ctx: BackendContext) =>
    new LocalBackend({ resource: localResource(tmp.join('exec-jobs')) }, ctx);
  const ex = new Executor({ resource: 'local', backend: makeBackend, hooks: noHooks });
  const backend = ex.backend;
  const c0 = cpuNow(backend.spawnerPids);
  const t0 = process.hrtime.bigint();
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const t = task(i, 'exec');
    ids.push(t.taskId);
    await ex.submit(t);
  }
  const done = await Promise.all(ids.map((id) => ex.wait(id)));
  const s = secs(t0);
  executorCpu = cpuPerTask(c0, cpuNow(backend.spawnerPids), n);
  if (done.some((d) => d.state !== 'finished')) throw new Error('a no-op task did not finish');
  await ex.close();
  return s;
}

interface Latency {
  /** Publish of task.submitted → "running" event: queue, intake, records. */
  toRunningP50: number;
  toRunningP99: number;
  /** "running" → "finished" event: spawn, run, exit, the last record. */
  runningToFinishedP50: number;
  runningToFinishedP99: number;
  totalP50: number;
  totalP99: number;
}

/** The batches' client process (./client.ts), ready: it has subscribed to the task events. */
async function startBatchClient(url: string, project: string, queue: string) {
  const script = fileURLToPath(new URL('./client.ts', import.meta.url));
  const child = fork(script, [url, project, queue, tmp.path], {
    execArgv: process.execArgv,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const next = () =>
    new Promise<unknown>((resolve, reject) => {
      const onExit = (code: number | null) => reject(new Error(`bench client exited (${code})`));
      child.once('exit', onExit);
      child.once('message', (m) => {
        child.off('exit', onExit);
        resolve(m);
      });
    });
  if ((await next()) !== 'ready') throw new Error('bench client did not start');
  return {
    pid: child.pid,
    async run(
      first: number,
      n: number,
      spaced?: { command: string },
    ): Promise<{ finished: number; failed: number }> {
      const answer = next();
      child.send({ first, n, ...(spaced ? { spaced } : {}) });
      return (await answer) as { finished: number; failed: number };
    },
    stop: () => child.disconnect(),
  };
}

/** Runs fn under the V8 profiler when `file` (CP_BENCH_RUNNER_PROFILE) names a file to write. */
async function profiled<T>(
  fn: () => Promise<T>,
  file = process.env.CP_BENCH_RUNNER_PROFILE,
): Promise<T> {
  if (!file) return fn();
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.start');
  try {
    return await fn();
  } finally {
    const { profile } = await session.post('Profiler.stop');
    writeFileSync(file, JSON.stringify(profile));
    session.disconnect();
  }
}

async function throughNats(n: number, latencyN: number) {
  await using nats = await NatsServer.start();
  const project = 'bench';
  // As services/runner's main connects it.
  const runnerBus = await Bus.connect({
    servers: nats.url,
    service: 'runner',
    project,
    logger,
    asyncTraces: false,
  });
  const runner = await startRunner(runnerBus, {
    project,
    resource: 'local',
    queue: 'local',
    runnerId: 'bench',
    stateDir: tmp.join('runner-state'),
    parallel: PARALLEL,
    intake: INTAKE,
    workspaceRoots: [tmp.path],
    ...(STAGES_FILE ? { stagesFile: STAGES_FILE } : {}),
  });
  // The batches' client is a process of its own (./client.ts), as MajorDomo or a chef would be:
  // this process's CPU is the runner's alone. The latency run's client below is in-process.
  const batchClient = await startBatchClient(nats.url, project, 'local');
  const spawnerPids = (runner.executor.backend as LocalBackend).spawnerPids;
  // What a batch stored, stream by stream (last sequence deltas): the task messages, the task
  // records (KV), the task.state events and the task logs' pieces and markers.
  const stored = {
    task_messages: streams.tasks(project),
    task_records: `KV_${buckets.tasks(project)}`,
    task_events: streams.events(project),
    task_logs: streams.taskLogs(project),
  };
  const lastSeqs = async () =>
    Object.fromEntries(
      await Promise.all(
        Object.entries(stored).map(
          async ([k, name]) =>
            [k, (await runnerBus.jsm.streams.info(name)).state.last_seq] as const,
        ),
      ),
    ) as Record<keyof typeof stored, number>;
  /** n tasks published at once by the client (200 per round of acks), from task number `first`, until all ended. */
  const batch = async (first: number) => {
    const seq0 = await lastSeqs();
    const before = runnerBus.nc.stats();
    const w0 = writeSyscallsOfThisThread();
    const early0 = runner.executor.stats().startedBeforeRecord ?? 0;
    const c0 = cpuNow(spawnerPids, nats.pid, batchClient.pid);
    const t0 = process.hrtime.bigint();
    const { finished, failed } = await batchClient.run(first, n);
    const wall = secs(t0);
    const after = runnerBus.nc.stats();
    const writes = writeSyscallsOfThisThread() - w0;
    // Tasks started before their running record was stored (local-backend.ts, liveness.ts).
    const early = (runner.executor.stats().startedBeforeRecord ?? 0) - early0;
    const cpu = cpuPerTask(c0, cpuNow(spawnerPids, nats.pid, batchClient.pid), n);
    if (failed || finished !== n) throw new Error(`${n - finished} no-op tasks did not finish`);
    // A task's last log marker leaves after its end is announced: read once nothing moves.
    let seq1 = await lastSeqs();
    for (let same = false; !same; ) {
      await new Promise((r) => setTimeout(r, 200));
      const again = await lastSeqs();
      same = Object.keys(stored).every((k) => {
        const key = k as keyof typeof stored;
        return again[key] === seq1[key];
      });
      seq1 = again;
    }
    const storedPerTask = Object.fromEntries(
      Object.keys(stored).map((k) => {
        const key = k as keyof typeof stored;
        return [key, (seq1[key] - seq0[key]) / n];
      }),
    ) as Record<keyof typeof stored, number>;
    return {
      storedPerTask,
      wall,
      // Messages the runner's connection sent and received per task: records, events, acks,
      // pulls and their replies (each JetStream round trip is one out, one in).
      msgsOutPerTask: (after.outMsgs - before.outMsgs) / n,
      msgsInPerTask: (after.inMsgs - before.inMsgs) / n,
      // write(2)/writev(2) calls of this process's event loop per task: the runner's socket
      // writes to NATS and pipe writes to its spawner.
      writesPerTask: writes / n,
      startedBeforeRecordShare: early / n,
      cpu,
    };
  };
  /**
   * SPACED_N tasks one at a time (SPACED_COMMAND), each sent once the one before ended, as a
   * chef's compiles come (pnpm bench cbuild): nothing shares a turn, a timer or a socket write
   * with another task. The runner's CPU a task (its process, and its event loop's thread alone:
   * the rest is V8's compiler and GC threads and libuv's pool), its writes and messages.
   */
  const spacedRun = async (first: number) => {
    if (SPACED_N <= 0) return undefined;
    const before = runnerBus.nc.stats();
    const w0 = writeSyscallsOfThisThread();
    const main0 = cpuMsOf(process.pid, '/proc/thread-self/stat');
    const c0 = cpuNow(spawnerPids, nats.pid, batchClient.pid);
    const t0 = process.hrtime.bigint();
    const { finished, failed } = await batchClient.run(first, SPACED_N, {
      command: SPACED_COMMAND,
    });
    const wall = secs(t0);
    const cpu = cpuPerTask(c0, cpuNow(spawnerPids, nats.pid, batchClient.pid), SPACED_N);
    const mainThread = (cpuMsOf(process.pid, '/proc/thread-self/stat') - main0) / SPACED_N;
    const writes = (writeSyscallsOfThisThread() - w0) / SPACED_N;
    const after = runnerBus.nc.stats();
    if (failed || finished !== SPACED_N)
      throw new Error(`${SPACED_N - finished} spaced tasks did not finish`);
    return {
      wall,
      cpu,
      mainThreadCpuMsPerTask: mainThread,
      writesPerTask: writes,
      msgsOutPerTask: (after.outMsgs - before.outMsgs) / SPACED_N,
      msgsInPerTask: (after.inMsgs - before.inMsgs) / SPACED_N,
    };
  };
  // Cold: the runner's first tasks (code not yet optimised by V8). Warm: the same runner's next
  // n, as a long-running runner takes them (xargs is warmed too: its page cache, above).
  const cold = await batch(0);
  const warm = await profiled(() => batch(n));
  // CP_BENCH_SPACED_PROFILE=FILE: the runner process's CPU profile of the spaced run.
  const spaced = await profiled(
    () => spacedRun(2 * n + latencyN),
    process.env.CP_BENCH_SPACED_PROFILE,
  );
  batchClient.stop();
  // The warm batch's tasks, b<n>… b<2n-1>: their lines are written by now (batch waits for the
  // streams to settle after the last end).
  const warmLines = STAGES_FILE
    ? readStages(STAGES_FILE, 0).lines.filter((l) => {
        const i = Number(/^b(\d+)-/.exec(l.taskId)?.[1]);
        return i >= n && i < 2 * n;
      })
    : [];

  const client = await Bus.connect({ servers: nats.url, service: 'bench', project, logger });
  let onEvent: (taskId: string, state: string) => void = () => {};
  const sub = client.nc.subscribe(subjects.taskState(project), {
    callback: (_e, m) => {
      const body = (
        JSON.parse(new TextDecoder().decode(m.data)) as { body: { taskId: string; state: string } }
      ).body;
      onEvent(body.taskId, body.state);
    },
  });
  await client.nc.flush();

  // One task at a time: how long one waits, stage by stage.
  const toRunning: number[] = [];
  const toFinished: number[] = [];
  const total: number[] = [];
  for (let i = 0; i < latencyN; i++) {
    const t = task(2 * n + i, 'local');
    const seen = new Map<string, number>();
    const done = new Promise<void>((resolve) => {
      onEvent = (id, state) => {
        if (id !== t.taskId) return;
        seen.set(state, performance.now());
        if (state === 'finished' || state === 'failed') resolve();
      };
    });
    const start = performance.now();
    await client.publish('task.submitted', subjects.tasks(project, 'local'), t);
    await done;
    const running = seen.get('running');
    const end = seen.get('finished');
    if (end === undefined) throw new Error(`latency task ${t.taskId} did not finish`);
    if (running === undefined) throw new Error(`latency task ${t.taskId} was never running`);
    toRunning.push(running - start);
    toFinished.push(end - running);
    total.push(end - start);
  }
  sub.unsubscribe();
  await client.close();
  await runner.stop();
  await runnerBus.close();
  const p = (xs: number[], q: number) =>
    percentile(
      [...xs].sort((a, b) => a - b),
      q,
    );
  const latency: Latency = {
    toRunningP50: p(toRunning, 50),
    toRunningP99: p(toRunning, 99),
    runningToFinishedP50: p(toFinished, 50),
    runningToFinishedP99: p(toFinished, 99),
    totalP50: p(total, 50),
    totalP99: p(total, 99),
  };
  return {
    ...cold,
    // CPU per task of the runner and the client together (one process before they were two:
    // the figure stays comparable), and of the nats-server.
    nodeCpuMsPerTask: cold.cpu.node + cold.cpu.client,
    serverCpuMsPerTask: cold.cpu.server,
    warm,
    spaced,
    latency,
    lanes: warmLines.length ? laneSummary(warmLines) : undefined,
  };
}

/** CPU time (user + system, ms) a process has used so far, from /proc. */

// --- 3. SLURM -------------------------------------------------------------------------------
function slurmResource(
  slurm: Slurm,
  jobs: string,
  batching: Record<string, number>,
): SlurmSudoResource {
  return parseResource({
    type: 'slurm_sudo',
    name: 'bench cluster',
    jobs_local_dir: jobs,
    jobs_runner_config: {
      default_slurm_config: { partition: slurm.partition, cpus_per_task: 1, mem: '20M' },
      batching_config: batching,
    },
    jobs_poll_interval: 0.5,
    tasks_local_dir: tmp.join('tasks'),
    tasks_python_config: python,
    tasks_pixi_config: {},
    slurm_client_env: slurm.env,
  }) as SlurmSudoResource;
}

async function onSlurm(
  slurm: Slurm,
  n: number,
  batching: Record<string, number>,
  tag: string,
): Promise<{ wall: number; stats: Readonly<Record<string, number>> }> {
  const jobs = tmp.join(`slurm-${tag}`);
  mkdirSync(jobs);
  chmodSync(jobs, 0o1777);
  const resource = slurmResource(slurm, jobs, batching);
  const makeBackend = (ctx: BackendContext) =>
    new SlurmBackend(
      {
        resource,
        host: new SudoHost({ username: 'cpuser', clientEnv: slurm.env, cwd: jobs }),
        jobsDir: jobs,
        tasksDir: resource.tasks_local_dir,
        batchWindowMs: 500,
      },
      ctx,
    );
  const ex = new Executor({ resource: 'bench-cluster', backend: makeBackend, hooks: noHooks });
  const t0 = process.hrtime.bigint();
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const t = task(i, tag);
    ids.push(t.taskId);
    await ex.submit(t);
  }
  // A SLURM task paused after its retries (squeue or sbatch failing: slurmctld overwhelmed)
  // never ends by itself: the bench stops and says why instead of waiting for ever.
  let waiting = true;
  const done = await Promise.race([
    Promise.all(ids.map((id) => ex.wait(id))).finally(() => {
      waiting = false;
    }),
    (async (): Promise<never> => {
      while (waiting) {
        await new Promise((r) => setTimeout(r, 1_000));
        const paused = ids.map((id) => ex.get(id)).find((r) => r?.state === 'paused');
        if (paused)
          throw new Error(`SLURM task ${paused.task.taskId} was paused: ${paused.reason}`);
      }
      return new Promise<never>(() => {});
    })(),
  ]);
  const wall = secs(t0);
  const bad = done.filter((d) => d.state !== 'finished');
  if (bad.length) throw new Error(`${bad.length} SLURM tasks did not finish: ${bad[0]?.reason}`);
  const stats = ex.stats();
  await ex.close();
  return { wall, stats };
}

// --- run ------------------------------------------------------------------------------------
const load1 = () => loadavg()[0] ?? 0;
const loadStart = load1();
console.log(
  `runner bench: ${availableParallelism()} cores, load average ${loadStart.toFixed(1)}; ${N} no-op tasks, ${PARALLEL} at a time`,
);
xargs(200); // warm the page cache
const xargsBefore = xargs(N);
const xargsCpuBefore = xargsCpuMsPerTask;
const execWall = await executorOnly(N);
const nats = await throughNats(N, LATENCY_N);
const tps = (wall: number) => N / wall;
// The machine's load moves between phases: xargs runs before and after ours, and the faster of
// the two is the baseline (the comparison never flatters the runner).
const xargsAfter = xargs(N);
const xargsWall = Math.min(xargsBefore, xargsAfter);
const xargsCpu = Math.min(xargsCpuBefore, xargsCpuMsPerTask);
if (!executorCpu) throw new Error('the executor run measured no CPU');
const exCpu = executorCpu;
const natsCpu = nats.cpu;
const warmCpu = nats.warm.cpu;
// On 2 cores, CPU per task bounds the rate whatever the scheduling: 2 cores / total ms a task.
table(
  'CPU per no-op task, ms (where the time goes; 2 cores do at most 2000 / total tasks a second)',
  ['path', 'this process', 'spawner', 'tasks', 'nats-server', 'client', 'total'],
  [
    ['xargs -P2 true (xargs + true)', 0, 0, xargsCpu, 0, 0, xargsCpu],
    ['Executor + LocalBackend', exCpu.node, exCpu.spawner, exCpu.tasks, 0, 0, cpuTotal(exCpu)],
    [
      'NATS → runner (process: runner; client apart)',
      natsCpu.node,
      natsCpu.spawner,
      natsCpu.tasks,
      natsCpu.server,
      natsCpu.client,
      cpuTotal(natsCpu),
    ],
    [
      'the same, warm (next batch, same runner)',
      warmCpu.node,
      warmCpu.spawner,
      warmCpu.tasks,
      warmCpu.server,
      warmCpu.client,
      cpuTotal(warmCpu),
    ],
  ],
);
const overheadMs = ((nats.wall - xargsWall) / N) * 1000;
const warmOverheadMs = ((nats.warm.wall - xargsWall) / N) * 1000;
table(
  `Local no-op tasks (${N}, ${PARALLEL} at a time)`,
  ['path', 'wall s', 'tasks/s', 'ms/task over xargs'],
  [
    ['xargs -P2 true', xargsWall, tps(xargsWall), 0],
    [
      'Executor + LocalBackend (no NATS)',
      execWall,
      tps(execWall),
      ((execWall - xargsWall) / N) * 1000,
    ],
    ['NATS → runner service → KV records + events', nats.wall, tps(nats.wall), overheadMs],
    [
      'the same, warm (next batch, same runner)',
      nats.warm.wall,
      tps(nats.warm.wall),
      warmOverheadMs,
    ],
  ],
);
const sp = nats.spaced;
if (sp)
  console.log(
    `${SPACED_N} tasks one at a time (\`${SPACED_COMMAND}\`, each sent once the one before ended, as a chef's compiles): ` +
      `runner ${sp.cpu.node.toFixed(3)} ms CPU a task (its event loop's thread ${sp.mainThreadCpuMsPerTask.toFixed(2)}), ` +
      `${sp.writesPerTask.toFixed(2)} write syscalls, ${sp.msgsOutPerTask.toFixed(2)} messages out and ${sp.msgsInPerTask.toFixed(2)} in; ` +
      `spawner ${sp.cpu.spawner.toFixed(3)} ms, nats-server ${sp.cpu.server.toFixed(3)} ms, client ${sp.cpu.client.toFixed(3)} ms`,
  );
const lat = nats.latency;
table(
  `One no-op task at a time through NATS and the runner (${LATENCY_N} tasks, ms)`,
  ['stage', 'p50', 'p99'],
  [
    // A running event may wait up to 20 ms for the task's next record (services/runner
    // task-events.ts): for a no-op task, its end.
    ['task.submitted published → running event (held)', lat.toRunningP50, lat.toRunningP99],
    ['running event → finished event', lat.runningToFinishedP50, lat.runningToFinishedP99],
    ['total', lat.totalP50, lat.totalP99],
  ],
);
console.log(
  `runner connection: ${nats.msgsOutPerTask.toFixed(2)} messages out, ${nats.msgsInPerTask.toFixed(2)} in per task; ` +
    `${nats.warm.writesPerTask.toFixed(2)} write syscalls per task (warm; runner: NATS socket and spawner pipe); ` +
    `CPU per task: ${nats.cpu.node.toFixed(2)} ms runner process, ${nats.cpu.client.toFixed(2)} ms client process, ${nats.serverCpuMsPerTask.toFixed(2)} ms nats-server`,
);
console.log(
  `CPU bound on ${availableParallelism()} cores, whatever the load: xargs ${Math.round((availableParallelism() * 1000) / xargsCpu)} tasks/s, ` +
    `NATS → runner warm ${Math.round((availableParallelism() * 1000) / cpuTotal(nats.warm.cpu))} tasks/s ` +
    `(1,000 tasks/s allows ${(availableParallelism() - xargsCpu).toFixed(2)} ms a task besides running it; warm costs ${(cpuTotal(nats.warm.cpu) - xargsCpu).toFixed(2)})`,
);
if (nats.lanes)
  table(
    "Where a lane's time goes, warm batch (ms per task; CP_BENCH_STAGES: the runner's stage times)",
    ['stage', 'tasks', 'mean', 'p50', 'p90', 'holds a lane'],
    nats.lanes.rows,
  );
const storedLine = (x: Record<string, number>) =>
  Object.entries(x)
    .map(([k, v]) => `${k.replace('task_', '')} ${v.toFixed(2)}`)
    .join(', ');
console.log(
  `stored (JetStream) messages per task: cold ${storedLine(nats.storedPerTask)}; warm ${storedLine(nats.warm.storedPerTask)}`,
);
const storedFigures = (prefix: string, x: Record<string, number>) => ({
  ...Object.fromEntries(Object.entries(x).map(([k, v]) => [`${prefix}stored_${k}_per_task`, v])),
  [`${prefix}stored_msgs_per_task`]: Object.values(x).reduce((a, b) => a + b, 0),
});
const localFigures = {
  ...nats.lanes?.figures,
  cores: availableParallelism(),
  // Figures are only comparable on a quiet machine: the 1-minute load average at start and end.
  load_avg_start: loadStart,
  local_tasks: N,
  parallel: PARALLEL,
  intake: INTAKE,
  v8_interrupt_budget: V8_BUDGET,
  xargs_wall_s: xargsWall,
  xargs_wall_before_s: xargsBefore,
  xargs_wall_after_s: xargsAfter,
  xargs_tasks_per_s: tps(xargsWall),
  executor_wall_s: execWall,
  executor_tasks_per_s: tps(execWall),
  nats_runner_wall_s: nats.wall,
  nats_runner_tasks_per_s: tps(nats.wall),
  overhead_ms_per_task: overheadMs,
  ratio_runner_vs_xargs: nats.wall / xargsWall,
  runner_msgs_out_per_task: nats.msgsOutPerTask,
  runner_msgs_in_per_task: nats.msgsInPerTask,
  write_syscalls_per_task: nats.writesPerTask,
  ...storedFigures('', nats.storedPerTask),
  node_cpu_ms_per_task: nats.nodeCpuMsPerTask,
  // node_cpu_ms_per_task split: the runner's process, and the client's (a process of its own).
  runner_cpu_ms_per_task: natsCpu.node,
  client_cpu_ms_per_task: natsCpu.client,
  nats_server_cpu_ms_per_task: nats.serverCpuMsPerTask,
  xargs_cpu_ms_per_task: xargsCpu,
  executor_node_cpu_ms_per_task: exCpu.node,
  executor_spawner_cpu_ms_per_task: exCpu.spawner,
  executor_tasks_cpu_ms_per_task: exCpu.tasks,
  executor_total_cpu_ms_per_task: cpuTotal(exCpu),
  nats_spawner_cpu_ms_per_task: natsCpu.spawner,
  nats_tasks_cpu_ms_per_task: natsCpu.tasks,
  nats_total_cpu_ms_per_task: cpuTotal(natsCpu),
  ratio_executor_vs_xargs: execWall / xargsWall,
  goal_half_xargs_met: xargsWall / nats.wall >= 0.5,
  latency_tasks: LATENCY_N,
  latency_to_running_p50_ms: lat.toRunningP50,
  latency_to_running_p99_ms: lat.toRunningP99,
  latency_running_to_finished_p50_ms: lat.runningToFinishedP50,
  latency_running_to_finished_p99_ms: lat.runningToFinishedP99,
  latency_total_p50_ms: lat.totalP50,
  latency_total_p99_ms: lat.totalP99,
  goal_1000_tps_met: tps(nats.wall) >= 1000,
  goal_1ms_overhead_met: overheadMs <= 1,
  // Issue #15: at most 0.5 ms per task over xargs -P2 (HyperQueue: 0.1 ms).
  goal_half_ms_overhead_met: overheadMs <= 0.5,
  // The same runner's next batch (steady state: a runner is a daemon): the same figures.
  nats_runner_warm_wall_s: nats.warm.wall,
  nats_runner_warm_tasks_per_s: tps(nats.warm.wall),
  warm_overhead_ms_per_task: warmOverheadMs,
  ratio_warm_runner_vs_xargs: nats.warm.wall / xargsWall,
  warm_runner_msgs_out_per_task: nats.warm.msgsOutPerTask,
  warm_runner_msgs_in_per_task: nats.warm.msgsInPerTask,
  warm_write_syscalls_per_task: nats.warm.writesPerTask,
  warm_started_before_record_share: nats.warm.startedBeforeRecordShare,
  ...storedFigures('warm_', nats.warm.storedPerTask),
  warm_node_cpu_ms_per_task: warmCpu.node + warmCpu.client,
  warm_runner_cpu_ms_per_task: warmCpu.node,
  warm_client_cpu_ms_per_task: warmCpu.client,
  warm_nats_server_cpu_ms_per_task: warmCpu.server,
  warm_nats_spawner_cpu_ms_per_task: warmCpu.spawner,
  warm_nats_tasks_cpu_ms_per_task: warmCpu.tasks,
  warm_nats_total_cpu_ms_per_task: cpuTotal(warmCpu),
  // What the CPU alone allows, whatever the load: the cores over the CPU a task costs. The
  // goal of 1,000 tasks/s needs a total of at most cores × 1000 / 1000 ms a task (2 ms here),
  // of which xargs' own share is what running `true` costs.
  xargs_cpu_bound_tasks_per_s: (availableParallelism() * 1000) / xargsCpu,
  cpu_bound_tasks_per_s: (availableParallelism() * 1000) / cpuTotal(natsCpu),
  warm_cpu_bound_tasks_per_s: (availableParallelism() * 1000) / cpuTotal(warmCpu),
  // The CPU a task may cost besides what running it costs (xargs'), for 1,000 tasks/s here.
  cpu_budget_ms_for_1000_tps: availableParallelism() - xargsCpu,
  warm_cpu_over_xargs_ms_per_task: cpuTotal(warmCpu) - xargsCpu,
  // The rate the CPU allows, as a share of xargs' (goal ≥ 0.5): what the wall ratio would be on
  // an otherwise idle machine, and a figure the other processes' load does not move as much.
  cpu_bound_ratio_vs_xargs: xargsCpu / cpuTotal(natsCpu),
  warm_cpu_bound_ratio_vs_xargs: xargsCpu / cpuTotal(warmCpu),
  goal_warm_cpu_bound_half_xargs_met: xargsCpu / cpuTotal(warmCpu) >= 0.5,
  goal_warm_1000_tps_met: tps(nats.warm.wall) >= 1000,
  goal_warm_half_xargs_met: xargsWall / nats.warm.wall >= 0.5,
  goal_warm_half_ms_overhead_met: warmOverheadMs <= 0.5,
  // Tasks one at a time (SPACED_COMMAND), as a chef's compiles: what each costs the runner alone.
  ...(sp
    ? {
        spaced_tasks: SPACED_N,
        spaced_command: SPACED_COMMAND,
        spaced_wall_s: sp.wall,
        spaced_runner_cpu_ms_per_task: sp.cpu.node,
        spaced_runner_main_thread_cpu_ms_per_task: sp.mainThreadCpuMsPerTask,
        spaced_spawner_cpu_ms_per_task: sp.cpu.spawner,
        spaced_nats_server_cpu_ms_per_task: sp.cpu.server,
        spaced_client_cpu_ms_per_task: sp.cpu.client,
        spaced_write_syscalls_per_task: sp.writesPerTask,
        spaced_runner_msgs_out_per_task: sp.msgsOutPerTask,
        spaced_runner_msgs_in_per_task: sp.msgsInPerTask,
      }
    : {}),
};

const envCosts = await environmentCosts(tmp, Number(process.env.CP_BENCH_ENV_ROUNDS ?? 20));
table(
  'Task environments, local, one task at a time (goal: a task reusing an environment ≤ 1.1× one without)',
  ['task', 'runs', 'wall ms (median)'],
  envCosts.rows,
);
const k8sCosts = await kubernetesCosts(
  tmp,
  Number(process.env.CP_BENCH_K8S_ROUNDS ?? 20),
  Number(process.env.CP_BENCH_K8S_BATCH ?? 40),
);
table(
  'Kubernetes backend against the KubeApi STAND-IN (pods are local processes: no scheduler or image pull), one task at a time unless said, poll 100 ms',
  ['path', 'tasks', 'submit→finished ms p50', 'p99'],
  k8sCosts.rows,
);
if (process.env.CP_BENCH_SKIP_SLURM) {
  finish('runner', {
    ...localFigures,
    ...envCosts.figures,
    ...k8sCosts.figures,
    load_avg_end: load1(),
  });
  process.exit(0);
}
ensureSystemUser('cpuser');
await using slurm = await Slurm.start();
// Batched as the seed's example would: few jobs, each its share of the tasks, 2 lanes each.
const batched = await onSlurm(
  slurm,
  SLURM_N,
  {
    target_cpus_per_job: 2,
    max_cpus_per_job: 2,
    target_mem_per_job: 100,
    max_mem_per_job: 100,
    target_num_jobs: 2,
    max_num_jobs: 4,
  },
  'batched',
);
// One job per task: nothing may share a job.
const single = await oneSbatchPerTask({
  total: SLURM_N,
  measured: SLURM_SINGLE,
  run: (n, tag) =>
    onSlurm(
      slurm,
      n,
      {
        target_cpus_per_job: 1,
        max_cpus_per_job: 1,
        target_mem_per_job: 20,
        max_mem_per_job: 20,
        target_num_jobs: 1_000_000,
        max_num_jobs: 1_000_000,
      },
      tag,
    ),
});
const slurmRatio = batched.wall / single.wallForTotal;
table(
  `SLURM tiny tasks (single node: ${availableParallelism()} CPUs, 2000 MB, DefMemPerCPU 100 MB, sched/backfill, 20 MB per task, poll 0.5 s; at most ${availableParallelism()} tasks at once either way: one CPU each)`,
  ['mode', 'tasks', 'wall s', 'sbatch', 'squeue calls', 'scontrol calls'],
  [
    [
      'batched (max 4 jobs × 2 lanes)',
      SLURM_N,
      batched.wall,
      batched.stats.sbatch ?? 0,
      batched.stats.squeue ?? 0,
      batched.stats.scontrol ?? 0,
    ],
    ...single.rows,
  ],
);
console.log(
  `\nlocal: ${Math.round(tps(nats.wall))} tasks/s through NATS (goal ≥ 1000), ${overheadMs.toFixed(3)} ms/task over xargs (goal ≤ 1)` +
    `\nslurm: batched takes ${(slurmRatio * 100).toFixed(1)}% of one-sbatch-per-task (goal ≤ 10%)`,
);
finish('runner', {
  ...localFigures,
  ...envCosts.figures,
  ...k8sCosts.figures,
  load_avg_end: load1(),
  slurm_batched_tasks: SLURM_N,
  slurm_batched_wall_s: batched.wall,
  slurm_batched_jobs: batched.stats.sbatch ?? 0,
  slurm_batched_squeue_calls: batched.stats.squeue ?? 0,
  slurm_batched_scontrol_calls: batched.stats.scontrol ?? 0,
  ...single.figures,
  slurm_ratio_batched_vs_single: slurmRatio,
  goal_tenth_met: slurmRatio <= 0.1,
});
