import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Bus, TypedKv } from '@computepods/bus';
import { subjects, type TaskRecord, type TaskSubmitted } from '@computepods/protocol';
import {
  defined,
  ensureSystemUser,
  type ManagedProcess,
  NatsServer,
  openFolders,
  Slurm,
  startTogether,
  TempDir,
  until as waitUntil,
} from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { quietBus, resourceFiles, runnerProcess, runnerReady, tasksKv } from './test-runner-kit.js';

// The runner service itself, as a child process, killed with SIGKILL while its tasks run
// (locally and on a real SLURM), then started again: it must reconcile from its KV records.
const P = 'crash';
const tmp = new TempDir('cp-runner-crash-');
let nats: NatsServer;
let slurm: Slurm;
let bus: Bus;
let kv: TypedKv<typeof TaskRecord>;

beforeAll(async () => {
  ensureSystemUser('cpuser');
  chmodSync(tmp.path, 0o755);
  [nats, slurm] = await startTogether([NatsServer.start(), Slurm.start()]);
  bus = await quietBus({ servers: nats.url, service: 'crash-test', project: P });
  kv = await tasksKv(bus, P);
});
afterAll(async () => {
  await bus?.close();
  await Promise.allSettled([nats?.[Symbol.asyncDispose](), slurm?.[Symbol.asyncDispose]()]);
  tmp[Symbol.dispose]();
});

function runner(env: Record<string, string>): ManagedProcess {
  // every task of these tests runs in a folder below tmp
  return runnerProcess(nats.url, P, { CP_WORKSPACE_ROOTS: tmp.path, ...env });
}

const until = (
  cond: () => Promise<boolean>,
  what: string,
  ms = 90_000,
  diagnostics?: () => string,
) => waitUntil(cond, what, ms, diagnostics);

const stateOf = async (id: string) => (await kv.get(id))?.value.state;

async function crashAndRecover(opts: {
  resource: string;
  env: Record<string, string>;
  dir: string;
  tasks: TaskSubmitted[];
  /** What must hold before the kill. */
  before: Record<string, string>;
  /** Shows that the tasks went on while the runner was dead. */
  meanwhile: () => Promise<boolean>;
  /**
   * Also true before the kill: the processes really started. A task is recorded running just
   * before it is spawned, so a kill in between is another case (covered by the executor tests).
   */
  started?: () => Promise<boolean>;
}) {
  const env = { CP_RESOURCE: opts.resource, CP_RUNNER_ID: `r-${opts.resource}`, ...opts.env };
  const first = runner(env);
  await runnerReady(first);
  for (const t of opts.tasks)
    await bus.publish('task.submitted', subjects.tasks(P, opts.resource), t);
  const seen: Record<string, string | undefined> = {};
  await until(
    async () => {
      for (const id of Object.keys(opts.before)) seen[id] = await stateOf(id);
      for (const [id, s] of Object.entries(opts.before)) if (seen[id] !== s) return false;
      return opts.started ? opts.started() : true;
    },
    `states before the kill ${JSON.stringify(opts.before)}`,
    90_000,
    () => `states seen: ${JSON.stringify(seen)}\n--- runner\n${first.tail(6000)}`,
  );
  await first.kill9();
  writeFileSync(join(opts.dir, 'gate'), '');
  await until(opts.meanwhile, 'tasks to end while the runner is down');
  const second = runner(env);
  try {
    await runnerReady(second);
    expect(second.output).toMatch(/adopting tasks from before a restart/);
    await until(async () => {
      for (const t of opts.tasks) {
        const s = await stateOf(t.taskId);
        if (!s || !['finished', 'failed', 'killed'].includes(s)) return false;
      }
      return true;
    }, 'every task to end after the restart');
  } finally {
    await second.stop();
  }
  return new Map(
    await Promise.all(
      opts.tasks.map(
        async (t) =>
          [t.taskId, defined(await kv.get(t.taskId), '(await kv.get(t.taskId))').value] as const,
      ),
    ),
  );
}

describe('runner service killed with SIGKILL', { timeout: 180000 }, () => {
  it('local: collects, follows, starts, and runs nothing twice', async () => {
    const dir = tmp.join('local');
    mkdirSync(join(dir, 'runs'), { recursive: true });
    const gate = `while [ ! -e ${dir}/gate ]; do sleep 0.05; done`;
    const mk = (id: string, body: string): TaskSubmitted => ({
      taskId: id,
      resource: 'local',
      command: `echo run >> ${dir}/runs/${id}; ${body}`,
      cwd: dir,
      env: {},
      gpu: false,
    });
    const tasks = [
      mk('l-ok', `${gate}`),
      mk('l-3', `${gate}; exit 3`),
      mk('l-late', `${gate}; sleep 2`),
      mk('l-queued', 'true'),
    ];
    const stateDir = join(dir, 'state');
    // The task folders of the default local resource, per project (jobs-dir.ts).
    const folder = (id: string) => join(stateDir, 'runner', 'tasks', 'projects', P, id);
    const recs = await crashAndRecover({
      resource: 'local',
      env: { CP_STATE_DIR: stateDir, CP_PARALLEL: '3' },
      dir,
      tasks,
      before: { 'l-ok': 'running', 'l-3': 'running', 'l-late': 'running', 'l-queued': 'submitted' },
      started: async () =>
        ['l-ok', 'l-3', 'l-late'].every((id) => existsSync(join(folder(id), 'pid'))),
      meanwhile: async () => ['l-ok', 'l-3'].every((id) => existsSync(join(folder(id), 'exit'))),
    });
    expect(Object.fromEntries([...recs].map(([id, r]) => [id, [r.state, r.exitCode]]))).toEqual({
      'l-ok': ['finished', 0],
      'l-3': ['failed', 3],
      'l-late': ['finished', 0],
      'l-queued': ['finished', 0],
    });
    for (const t of tasks) expect(readFileSync(`${dir}/runs/${t.taskId}`, 'utf8')).toBe('run\n');
  });

  it('slurm_sudo: reconciles with SLURM and the exit-code files, and runs nothing twice', async () => {
    const dir = tmp.join('slurm');
    openFolders(dir, join(dir, 'runs'), join(dir, 'jobs'));
    const files = resourceFiles(
      dir,
      {
        type: 'slurm_sudo',
        name: 'SLURM cluster',
        id: 'hpc',
        jobs_local_dir: join(dir, 'jobs'),
        jobs_runner_config: {
          default_slurm_config: { partition: slurm.partition, cpus_per_task: 1, mem: '50M' },
          batching_config: {
            target_cpus_per_job: 2,
            max_cpus_per_job: 2,
            target_mem_per_job: 200,
            max_mem_per_job: 200,
            target_num_jobs: 1,
            max_num_jobs: 2,
          },
        },
        jobs_poll_interval: 0.3,
        tasks_local_dir: join(dir, 'tasks'),
        tasks_python_config: { default_version: '3.12', versions: { '3.12': '/usr/bin/python3' } },
        tasks_pixi_config: {},
        slurm_client_env: slurm.env,
      },
      { name: 'SLURM/sudo profile', resource_type: 'slurm_sudo', username: 'cpuser' },
    );
    const gate = `while [ ! -e ${dir}/gate ]; do sleep 0.1; done`;
    const mk = (id: string, body: string): TaskSubmitted => ({
      taskId: id,
      resource: 'hpc',
      command: `echo run >> ${dir}/runs/${id}; ${body}`,
      cwd: dir,
      env: {},
      gpu: false,
    });
    const tasks = [mk('s-down', `${gate}; exit 7`), mk('s-after', `${gate}; sleep 3; echo late`)];
    const recs = await crashAndRecover({
      resource: 'hpc',
      env: { ...files, CP_STATE_DIR: join(dir, 'state') },
      dir,
      tasks,
      before: { 's-down': 'running', 's-after': 'running' },
      meanwhile: async () => {
        // where the job writes s-down's exit code, from its record
        const h = (await kv.get('s-down'))?.value.handle as { dir: string; index: number };
        return existsSync(`${h.dir}/${h.index}.exit`);
      },
    }).catch((err) => {
      throw new Error(`${err}\n${slurm.output.slice(-1500)}`);
    });
    expect(recs.get('s-down')).toMatchObject({ state: 'failed', exitCode: 7 });
    expect(recs.get('s-after')).toMatchObject({ state: 'finished', exitCode: 0 });
    expect(defined(recs.get('s-down'), "recs.get('s-down')").jobId).toBe(
      defined(recs.get('s-after'), "recs.get('s-after')").jobId,
    );
    for (const t of tasks) expect(readFileSync(`${dir}/runs/${t.taskId}`, 'utf8')).toBe('run\n');
  });
});
