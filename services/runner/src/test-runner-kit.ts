import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Bus, quietLogger, readTaskLog, type TaskLogEvent, type TypedKv } from '@computepods/bus';
import { buckets, TaskRecord } from '@computepods/protocol';
import { ManagedProcess, type Slurm } from '@computepods/testkit';
import type { RunnerConfig } from './config.js';

/**
 * What the runner's tests against a real nats-server share; each test keeps its own servers,
 * folders, resources and timeouts. The servers themselves come from @computepods/testkit.
 *
 *   const bus = await quietBus({ servers: nats.url, project: P, service: 'crash-test' });
 *   const kv = await tasksKv(bus, P);
 *   const runner = runnerProcess(nats.url, P, { CP_RESOURCE: 'local', CP_RUNNER_ID: 'r-1' });
 *   await runnerReady(runner);
 */

/** The runner as `up` starts it: its bundle while fresh, else its sources (bin/runner.js). */
export const runnerBin = fileURLToPath(new URL('../bin/runner.js', import.meta.url));
/** The checkout the runner runs from (its cwd, and a pilot's computepods_dir). */
export const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));

/**
 * A bus whose logger is silent: a test's publishes and reads, or an in-process runner whose log
 * lines the tests do not read, print nothing between vitest's own lines.
 */
export async function quietBus(options: {
  servers: string;
  project: string;
  service: string;
  credsFile?: string;
}): Promise<Bus> {
  const logger = quietLogger(options.service);
  return Bus.connect({ ...options, logger });
}

/**
 * The project's task records, opened with the history the runner gives the bucket (5), so it is
 * the same bucket whether the test or the runner makes it.
 */
export function tasksKv(bus: Bus, project: string): Promise<TypedKv<typeof TaskRecord>> {
  return bus.kv(buckets.tasks(project), TaskRecord, { history: 5 });
}

/** The records the tasks `ids` have so far (a task not yet recorded is left out). */
export async function taskRecords(
  kv: TypedKv<typeof TaskRecord>,
  ids: readonly string[],
): Promise<TaskRecord[]> {
  return (await Promise.all(ids.map(async (id) => (await kv.get(id))?.value))).filter(
    (r): r is TaskRecord => r !== undefined,
  );
}

/**
 * A task's stdout as the task-log stream holds it now (read once, not followed), and its end
 * marker if the whole log is published.
 */
export async function publishedStdout(
  bus: Bus,
  queue: string,
  taskId: string,
): Promise<{ text: string; end?: TaskLogEvent }> {
  const events: TaskLogEvent[] = [];
  await readTaskLog(bus, {
    queue,
    taskId,
    streams: ['stdout'],
    follow: false,
    onEvent: (e) => {
      events.push(e);
    },
  });
  const text = Buffer.concat(events.flatMap((e) => (e.kind === 'data' ? [e.data] : []))).toString();
  return { text, end: events.find((e) => e.kind === 'end') };
}

/**
 * The runner service as a child process of the test, as `up` starts it, on `natsUrl` for
 * `project` with JSON logs (what the tests match); `env` adds the test's own settings
 * (CP_RESOURCE, CP_RUNNER_ID, CP_STATE_DIR, CP_WORKSPACE_ROOTS...) and may override these;
 * `name` heads its output in a failure's message.
 */
export function runnerProcess(
  natsUrl: string,
  project: string,
  env: Record<string, string>,
  { name = 'runner' }: { name?: string } = {},
): ManagedProcess {
  return new ManagedProcess({
    name,
    command: process.execPath,
    args: [runnerBin],
    cwd: repoRoot,
    env: { ...process.env, NATS_URL: natsUrl, CP_PROJECT: project, CP_LOG_FORMAT: 'json', ...env },
  });
}

/** Resolves once the runner process logs that it takes tasks (a minute at most). */
export async function runnerReady(runner: ManagedProcess): Promise<void> {
  await runner.waitForOutput('"msg":"runner ready"', 60_000);
}

/**
 * Writes a resource and a profile as `dir`/resource.json and `dir`/profile.json, and returns
 * the runner's settings that name them.
 */
export function resourceFiles(
  dir: string,
  resource: unknown,
  profile: unknown,
): { CP_RESOURCE_FILE: string; CP_PROFILE_FILE: string } {
  const files = {
    CP_RESOURCE_FILE: join(dir, 'resource.json'),
    CP_PROFILE_FILE: join(dir, 'profile.json'),
  };
  writeFileSync(files.CP_RESOURCE_FILE, JSON.stringify(resource));
  writeFileSync(files.CP_PROFILE_FILE, JSON.stringify(profile));
  return files;
}

/**
 * The fields a SLURM resource on the test kit's cluster shares in these tests: its job and task
 * folders below `dir`, one job of one CPU and 200 MB at a time (so a test knows which job runs
 * what), state polled every 0.3 s, the system python3.
 */
export function testSlurmFields(slurm: Slurm, dir: string) {
  return {
    jobs_local_dir: join(dir, 'jobs'),
    jobs_runner_config: {
      default_slurm_config: { partition: slurm.partition, cpus_per_task: 1, mem: '200M' },
      batching_config: {
        target_cpus_per_job: 1,
        max_cpus_per_job: 1,
        target_mem_per_job: 200,
        max_mem_per_job: 200,
        target_num_jobs: 1,
        max_num_jobs: 1,
      },
    },
    jobs_poll_interval: 0.3,
    tasks_local_dir: join(dir, 'tasks'),
    tasks_python_config: { default_version: '3.12', versions: { '3.12': '/usr/bin/python3' } },
    tasks_pixi_config: {},
    slurm_client_env: slurm.env,
  };
}

/**
 * The in-process local runner most tests start: queue `local`, id r1, two lanes, an intake of
 * 16, its state in `stateDir`, tasks allowed in `ws` only.
 */
export function localRunnerConfig(project: string, stateDir: string, ws: string): RunnerConfig {
  return {
    project,
    resource: 'local',
    queue: 'local',
    runnerId: 'r1',
    stateDir,
    parallel: 2,
    intake: 16,
    workspaceRoots: [ws],
  };
}
