// The task-environment part of `pnpm bench runner`: what a Python environment costs a task on
// the local resource. A plain `/usr/bin/python3 -c pass` (no environment) against the same command in
// an environment with one package (a wheel built here, no network): the first task, which
// makes the environment, and the next ones, which reuse it. One task at a time, medians.
// Goal (issue #14): a task reusing an environment ≤ 1.1× a task without one.
import { mkdirSync } from 'node:fs';
import { Executor, type ExecutorHooks, LocalBackend } from '@computepods/executors';
import { type LocalResource, parseResource, type TaskSubmitted } from '@computepods/protocol';
import { makeWheel, type TempDir } from '@computepods/testkit';
import { percentile } from '../lib/report.js';

const noHooks: ExecutorHooks = { record: async () => {}, publish: () => {} };

export interface EnvironmentFigures {
  readonly rows: (string | number)[][];
  readonly figures: Record<string, number>;
}

export async function environmentCosts(tmp: TempDir, rounds: number): Promise<EnvironmentFigures> {
  const wheels = tmp.join('env-wheels');
  mkdirSync(wheels, { recursive: true });
  await makeWheel(wheels, 'cpbench', '1.0', { '__init__.py': 'X = 1\n' });
  const resource = parseResource({
    type: 'local',
    name: 'env bench',
    jobs_local_dir: tmp.join('env-jobs'),
    jobs_runner_config: { parallel_tasks_per_job: 1 },
    jobs_poll_interval: 0,
    tasks_local_dir: tmp.join('env-tasks'),
    tasks_python_config: { default_version: '3.11', versions: { '3.11': '/usr/bin/python3' } },
    tasks_pixi_config: {},
  }) as LocalResource;
  const ex = new Executor({
    resource: 'local',
    backend: (ctx) => new LocalBackend({ resource }, ctx),
    hooks: noHooks,
  });
  let n = 0;
  const env = { PIP_NO_INDEX: '1', PIP_FIND_LINKS: wheels, PIP_NO_CACHE_DIR: '1' };
  const one = async (command: string, extra: Partial<TaskSubmitted> = {}): Promise<number> => {
    const t: TaskSubmitted = {
      taskId: `env-${++n}`,
      resource: 'local',
      command,
      cwd: tmp.path,
      env,
      gpu: false,
      ...extra,
    };
    const t0 = performance.now();
    await ex.submit(t);
    const rec = await ex.wait(t.taskId);
    if (rec.state !== 'finished') throw new Error(`environment bench task failed: ${rec.reason}`);
    return performance.now() - t0;
  };
  const environment = { requirements: ['cpbench==1.0'] };
  const median = (xs: number[]) =>
    percentile(
      [...xs].sort((a, b) => a - b),
      50,
    );
  // The same interpreter both ways: /usr/bin/python3, by its path without an environment (a
  // bare `python3` may be a version manager's shim), by the venv's PATH with one.
  await one('/usr/bin/python3 -c pass'); // warm the interpreter's files
  const plain: number[] = [];
  const reuse: number[] = [];
  const create = await one('python -c "import cpbench"', { environment });
  // Alternating, so a change of machine load falls on both alike.
  for (let i = 0; i < rounds; i++) {
    plain.push(await one('/usr/bin/python3 -c pass'));
    reuse.push(await one('python -c pass', { environment }));
  }
  await ex.close();
  const plainMs = median(plain);
  const reuseMs = median(reuse);
  return {
    rows: [
      ['no environment (/usr/bin/python3 -c pass)', rounds, plainMs],
      ['environment made (venv + pip install of one wheel)', 1, create],
      ['environment reused (python -c pass)', rounds, reuseMs],
    ],
    figures: {
      env_rounds: rounds,
      env_plain_task_p50_ms: plainMs,
      env_create_task_ms: create,
      env_reuse_task_p50_ms: reuseMs,
      env_reuse_over_plain: reuseMs / plainMs,
      env_create_over_plain: create / plainMs,
    },
  };
}
