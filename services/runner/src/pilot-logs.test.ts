import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Bus, createLogger, readTaskLog, type TaskLogEvent } from '@computepods/bus';
import { subjects } from '@computepods/protocol';
import {
  ensureSystemUser,
  killProcessesUsing,
  ManagedProcess,
  NatsServer,
  Slurm,
  startTogether,
  TempDir,
  until,
} from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// A task run by a pilot worker (a runner inside a SLURM job, as cpuser through sudo) has its
// log published by that worker, under the queue's subject, followed live from here.
const P = 'pilotlogs';
/** The runner as `up` starts it: its bundle while fresh, else its sources (bin/runner.js). */
const main = fileURLToPath(new URL('../bin/runner.js', import.meta.url));
const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
const tmp = new TempDir('cp-runner-pilotlogs-');
let nats: NatsServer;
let slurm: Slurm;
let bus: Bus;

beforeAll(async () => {
  ensureSystemUser('cpuser');
  chmodSync(tmp.path, 0o755);
  for (const d of ['', 'jobs', 'tasks', 'ws']) {
    mkdirSync(tmp.join(d), { recursive: true });
    chmodSync(tmp.join(d), 0o1777);
  }
  [nats, slurm] = await startTogether([NatsServer.start(), Slurm.start()]);
  const logger = createLogger('pilotlogs-test');
  logger.level = 'silent';
  bus = await Bus.connect({ servers: nats.url, service: 'pilotlogs-test', project: P, logger });
});
afterAll(async () => {
  await slurm?.[Symbol.asyncDispose]();
  killProcessesUsing(tmp.path);
  await bus?.close();
  await nats?.[Symbol.asyncDispose]();
  tmp[Symbol.dispose]();
});

describe('task logs from a pilot worker', { timeout: 300_000 }, () => {
  it('follows a task a pilot runs, live, to its end', async () => {
    const resourceFile = tmp.join('resource.json');
    const profileFile = tmp.join('profile.json');
    writeFileSync(
      resourceFile,
      JSON.stringify({
        type: 'slurm_sudo',
        name: 'SLURM cluster',
        id: 'hpc',
        jobs_local_dir: tmp.join('jobs'),
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
        tasks_local_dir: tmp.join('tasks'),
        tasks_python_config: { default_version: '3.12', versions: { '3.12': '/usr/bin/python3' } },
        tasks_pixi_config: {},
        slurm_client_env: slurm.env,
        pilot_config: { max_workers: 1, idle_timeout_s: 3, cpus_per_worker: 1 },
      }),
    );
    writeFileSync(
      profileFile,
      JSON.stringify({ name: 'sudo', resource_type: 'slurm_sudo', username: 'cpuser' }),
    );
    const runner = new ManagedProcess({
      name: 'runner',
      command: process.execPath,
      args: [main],
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
        CP_STATE_DIR: tmp.join('state'),
        CP_WORKSPACE_ROOTS: tmp.path,
      },
    });
    const gate = tmp.join('ws', 'gate');
    try {
      await runner.waitForOutput('"msg":"runner ready"', 60_000);
      await bus.publish('task.submitted', subjects.tasks(P, 'hpc'), {
        taskId: 'pilot.1',
        resource: 'hpc',
        command: `echo from the pilot; while [ ! -e ${gate} ]; do sleep 0.05; done; echo over`,
        cwd: tmp.join('ws'),
        env: {},
        gpu: false,
      });
      const events: TaskLogEvent[] = [];
      const text = () =>
        Buffer.concat(events.flatMap((e) => (e.kind === 'data' ? [e.data] : []))).toString();
      const follow = readTaskLog(bus, {
        queue: 'hpc',
        taskId: 'pilot.1',
        streams: ['stdout'],
        follow: true,
        onEvent: (e) => {
          events.push(e);
        },
      });
      await until(
        async () => text() === 'from the pilot\n',
        'the first line',
        180_000,
        () => runner.output.slice(-3000),
      );
      writeFileSync(gate, '');
      await follow;
      expect(text()).toBe('from the pilot\nover\n');
      expect(events.at(-1)).toMatchObject({ kind: 'end', state: 'finished', exitCode: 0 });
    } finally {
      await runner.stop();
    }
  });
});
