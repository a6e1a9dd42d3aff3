import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Bus, createLogger, type TypedKv } from '@computepods/bus';
import { buckets, subjects, TaskRecord, type TaskSubmitted } from '@computepods/protocol';
import { ensureSystemUser, ManagedProcess, NatsServer, Slurm, TempDir } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// Pilot mode on a real SLURM: the runner service (a child process) submits pilot jobs whose
// runner workers pull the tasks from the queue, then leave by idle timeout.
const P = 'pilot';
const main = fileURLToPath(new URL('./main.ts', import.meta.url));
const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
const tmp = new TempDir('cp-runner-pilot-');
let nats: NatsServer;
let slurm: Slurm;
let bus: Bus;
let kv: TypedKv<typeof TaskRecord>;

beforeAll(async () => {
  ensureSystemUser('cpuser');
  chmodSync(tmp.path, 0o755);
  [nats, slurm] = await Promise.all([NatsServer.start(), Slurm.start()]);
  const logger = createLogger('pilot-test');
  logger.level = 'silent';
  bus = await Bus.connect({ servers: nats.url, service: 'pilot-test', project: P, logger });
  kv = await bus.kv(buckets.tasks(P), TaskRecord, { history: 5 });
});
afterAll(async () => {
  await bus?.close();
  await Promise.allSettled([nats?.[Symbol.asyncDispose](), slurm?.[Symbol.asyncDispose]()]);
  tmp[Symbol.dispose]();
});

async function until(cond: () => Promise<boolean>, what: string, ms = 180_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end)
      throw new Error(`timed out waiting for ${what}\n${slurm.output.slice(-1500)}`);
    await sleep(100);
  }
}

describe('pilot mode on slurm_sudo', { timeout: 300_000 }, () => {
  it('runs every task once inside at most max_workers pilots, which then leave when idle', async () => {
    const dir = tmp.join('pilot');
    for (const d of [dir, join(dir, 'runs'), join(dir, 'jobs'), join(dir, 'tasks')]) {
      mkdirSync(d, { recursive: true });
      chmodSync(d, 0o1777);
    }
    const maxWorkers = 2;
    const resourceFile = join(dir, 'resource.json');
    writeFileSync(
      resourceFile,
      JSON.stringify({
        type: 'slurm_sudo',
        name: 'SLURM cluster',
        id: 'hpc',
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
        pilot_config: { max_workers: maxWorkers, idle_timeout_s: 3, cpus_per_worker: 1 },
      }),
    );
    const profileFile = join(dir, 'profile.json');
    writeFileSync(
      profileFile,
      JSON.stringify({
        name: 'SLURM/sudo profile',
        resource_type: 'slurm_sudo',
        username: 'cpuser',
      }),
    );
    const runner = new ManagedProcess({
      name: 'runner',
      command: process.execPath,
      args: ['--import', 'tsx', main],
      cwd: repoRoot,
      env: {
        ...process.env,
        NATS_URL: nats.url,
        CP_PROJECT: P,
        CP_LOG_FORMAT: 'json',
        CP_RESOURCE: 'hpc',
        CP_RUNNER_ID: 'r-hpc',
        CP_RESOURCE_FILE: resourceFile,
        CP_PROFILE_FILE: profileFile,
        CP_STATE_DIR: join(dir, 'state'),
      },
    });
    try {
      await runner.waitForOutput('"msg":"runner ready"', 60_000);
      expect(runner.output).toMatch(/pilot manager ready/);
      const tasks: TaskSubmitted[] = Array.from({ length: 20 }, (_, i) => ({
        taskId: `p-${i}`,
        resource: 'hpc',
        command: `echo run >> ${dir}/runs/p-${i}; echo "task ${i}"`,
        cwd: dir,
        env: {},
        gpu: false,
      }));
      for (const t of tasks) await bus.publish('task.submitted', subjects.tasks(P, 'hpc'), t);

      const stateOf = async (id: string) => (await kv.get(id))?.value.state;
      await until(
        async () => {
          for (const t of tasks) {
            const s = await stateOf(t.taskId);
            if (!s || !['finished', 'failed', 'killed'].includes(s)) return false;
          }
          return true;
        },
        `every task to end\n${runner.output.slice(-3000)}`,
      );

      const recs = await Promise.all(tasks.map(async (t) => (await kv.get(t.taskId))!.value));
      for (const r of recs) {
        expect(r).toMatchObject({ state: 'finished', exitCode: 0 });
        expect(r.history.map((h) => h.state)).toContain('running');
        expect(readFileSync(`${dir}/runs/${r.task.taskId}`, 'utf8')).toBe('run\n');
      }
      const runners = new Set(recs.map((r) => r.runner));
      for (const id of runners) expect(id).toMatch(/^pilot-hpc-[0-9]+$/);
      const jobIds = [...runners].map((id) => id!.replace('pilot-hpc-', ''));
      expect(jobIds.length).toBeGreaterThanOrEqual(1);
      expect(jobIds.length).toBeLessThanOrEqual(maxWorkers);

      // Drained: every pilot leaves by idle timeout (its job ends COMPLETED, not cancelled),
      // and the manager submits no pilots beyond max_workers meanwhile.
      const submitted = () =>
        [...runner.output.matchAll(/"jobId":"([0-9]+)"[^\n]*"msg":"pilot job submitted"/g)].map(
          (m) => m[1]!,
        );
      for (const id of jobIds) expect(submitted()).toContain(id);
      await until(async () => {
        const res = await slurm.command(['squeue', '--noheader', '--format=%i']);
        const queued = res.stdout.split('\n').map((l) => l.trim());
        return submitted().every((id) => !queued.includes(id));
      }, 'the pilot jobs to leave squeue');
      for (const id of submitted()) {
        const job = await slurm.waitForJob(id);
        expect(job.JobState).toBe('COMPLETED');
      }
    } catch (err) {
      throw new Error(`${err}\n--- runner\n${runner.output.slice(-4000)}`);
    } finally {
      await runner.stop();
    }
  });
});
