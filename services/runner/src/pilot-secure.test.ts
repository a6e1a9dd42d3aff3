import {
  chmodSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import {
  AuthStore,
  provisionProject,
  provisionRegistry,
  serverConfigLines,
} from '@computepods/auth';
import type { Bus, TypedKv } from '@computepods/bus';
import { subjects, type TaskRecord } from '@computepods/protocol';
import {
  defined,
  ensureSystemUser,
  killProcessesUsing,
  NatsServer,
  openFolders,
  Slurm,
  TempDir,
  until,
} from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  quietBus,
  resourceFiles,
  runnerProcess,
  runnerReady,
  taskRecords,
  tasksKv,
  testSlurmFields,
} from './test-runner-kit.js';

// Pilot mode in the secure default: the runner holds its queue's least-privilege credentials,
// and its pilot workers (jobs running as another user) connect with a copy only that user can
// read. The workers take and run the tasks as the runner would.
const P = 'pilotsec';
const tmp = new TempDir('cp-runner-pilot-secure-');
let nats: NatsServer;
let slurm: Slurm;
let store: AuthStore;
let bus: Bus;
let kv: TypedKv<typeof TaskRecord>;

beforeAll(async () => {
  ensureSystemUser('cpuser');
  chmodSync(tmp.path, 0o755);
  store = await AuthStore.open(tmp.join('auth'));
  [nats, slurm] = await Promise.all([
    NatsServer.start({ configLines: () => serverConfigLines(store, tmp.join('resolver')) }),
    Slurm.start(),
  ]);
  await provisionRegistry(store, nats.url);
  const admin = await provisionProject({ store, servers: nats.url, project: P });
  bus = await quietBus({ servers: nats.url, credsFile: admin, service: 't', project: P });
  kv = await tasksKv(bus, P);
}, 120_000);

afterAll(async () => {
  await slurm?.[Symbol.asyncDispose]();
  killProcessesUsing(tmp.path);
  await bus?.close();
  await nats?.[Symbol.asyncDispose]();
  tmp[Symbol.dispose]();
});

describe('pilot mode with least-privilege credentials', { timeout: 300_000 }, () => {
  it("slurm_sudo: the pilots connect with the runner's credentials, kept readable by the job user alone", async () => {
    const dir = tmp.join('sudo');
    openFolders(...['', 'runs', 'jobs', 'tasks'].map((d) => join(dir, d)));
    const resource = {
      type: 'slurm_sudo',
      name: 'SLURM cluster',
      id: 'hpc',
      ...testSlurmFields(slurm, dir),
      pilot_config: { max_workers: 1, idle_timeout_s: 3, cpus_per_worker: 1 },
    };
    const profile = { name: 'p', resource_type: 'slurm_sudo', username: 'cpuser' };
    const runner = runnerProcess(nats.url, P, {
      NATS_CREDS: await store.grantCreds({ role: 'runner', project: P, scope: 'hpc' }),
      CP_RESOURCE: 'hpc',
      CP_RUNNER_ID: 'r-hpc',
      ...resourceFiles(dir, resource, profile),
      CP_STATE_DIR: join(dir, 'state'),
      CP_WORKSPACE_ROOTS: tmp.path,
      // Only the release of a dead pilot's messages hands them out within the test.
      CP_RUNNER_ACK_WAIT_MS: String(10 * 60_000),
    });
    try {
      await runnerReady(runner);
      const ids = Array.from({ length: 4 }, (_, i) => `s-${i}`);
      for (const taskId of ids)
        await bus.publish('task.submitted', subjects.tasks(P, 'hpc'), {
          taskId,
          resource: 'hpc',
          command: `echo run >> ${dir}/runs/${taskId}`,
          cwd: dir,
        });
      // Staged by the runner for its pilot (pilot-staging.ts): the stage request is allowed by
      // the runner's own credentials, which the pilot holds, and the workspace is root's alone.
      const ws = join(dir, 'ws');
      mkdirSync(ws);
      chmodSync(ws, 0o700);
      writeFileSync(join(ws, 'in.txt'), 'staged\n');
      ids.push('s-staged');
      await bus.publish('task.submitted', subjects.tasks(P, 'hpc'), {
        taskId: 's-staged',
        resource: 'hpc',
        command: `echo run >> ${dir}/runs/s-staged; cat in.txt > out.txt`,
        cwd: ws,
        files: { inputs: ['in.txt'], outputs: ['out.txt'] },
      });
      const recs = () => taskRecords(kv, ids);
      await until(
        async () => (await recs()).filter((r) => r.state === 'finished').length === ids.length,
        'every task finished by a pilot',
        180_000,
        () => `${runner.output.slice(-3000)}\n${slurm.output.slice(-1500)}`,
      );
      for (const r of await recs()) expect(r.runner).toMatch(/^pilot-hpc-[0-9]+$/);
      expect(readFileSync(join(ws, 'out.txt'), 'utf8')).toBe('staged\n');
      for (const id of ids) expect(readFileSync(join(dir, 'runs', id), 'utf8')).toBe('run\n');
      // The copy the pilot connected with: the job user's alone.
      const pilotDirs = readdirSync(join(dir, 'jobs')).filter((d) => d.startsWith('pilot-hpc-'));
      expect(pilotDirs.length).toBeGreaterThan(0);
      for (const d of pilotDirs) {
        const st = statSync(join(dir, 'jobs', d, 'nats.creds'));
        expect(st.mode & 0o777).toBe(0o600);
      }

      // A pilot killed (SIGKILL to its worker) while it runs a task: the runner, with its
      // least-privilege credentials, reads which tasks the pending messages are and releases
      // the one the pilot held, so the next task runs in a new pilot (one lane in all).
      const gated = ['s-held', 's-next'];
      for (const taskId of gated)
        await bus.publish('task.submitted', subjects.tasks(P, 'hpc'), {
          taskId,
          resource: 'hpc',
          command: `echo start >> ${dir}/runs/${taskId}; while [ ! -e ${dir}/gate ]; do sleep 0.05; done`,
          cwd: dir,
        });
      const gatedRecs = () => taskRecords(kv, gated);
      const diag = () => `${runner.output.slice(-3000)}\n${slurm.output.slice(-1500)}`;
      await until(
        async () => (await gatedRecs()).some((r) => r.state === 'running'),
        'a gated task running',
        180_000,
        diag,
      );
      const killed = defined(
        (await gatedRecs()).find((r) => r.state === 'running'),
        "(await gatedRecs()).find((r) => r.state === 'running')",
      );
      const jobId = defined(killed.runner, 'killed.runner').replace('pilot-hpc-', '');
      // SIGKILL to the job's batch step alone, the worker: it cannot record its task's end.
      const res = await slurm.command(['scancel', '--signal=KILL', '--batch', jobId]);
      expect(res.code, res.stderr).toBe(0);
      await until(
        async () => (await kv.get(killed.task.taskId))?.value.state === 'failed',
        "the killed pilot's task failed",
        180_000,
        diag,
      );
      writeFileSync(join(dir, 'gate'), '');
      const next = defined(
        gated.find((id) => id !== killed.task.taskId),
        'gated.find((id) => id !== killed.task.taskId)',
      );
      await until(
        async () => (await kv.get(next))?.value.state === 'finished',
        'the next task run in a new pilot',
        180_000,
        diag,
      );
      expect((await kv.get(killed.task.taskId))?.value.reason).toContain(`pilot job ${jobId}`);
      await runner.waitForOutput(/held by an ended pilot are delivered again now/);
      expect(runner.output).not.toMatch(/could not release|Permissions Violation/i);
      // Once each pilot has ended its credentials go from the cluster (the killed one's too),
      // while the folders are kept for CP_JOB_KEEP_S / CP_JOB_KEEP_FAILED_S.
      const pilotCreds = () =>
        readdirSync(join(dir, 'jobs'))
          .filter((d) => d.startsWith('pilot-hpc-'))
          .filter((d) => existsSync(join(dir, 'jobs', d, 'nats.creds')));
      await until(
        async () => pilotCreds().length === 0,
        'no ended pilot holding credentials',
        180_000,
        () => `${pilotCreds()}\n${diag()}`,
      );
      expect(
        readdirSync(join(dir, 'jobs')).filter((d) => d.startsWith('pilot-hpc-')).length,
      ).toBeGreaterThanOrEqual(2);
      expect(runner.output).toMatch(/ended pilots' NATS credentials removed/);
    } finally {
      await runner.stop();
    }
  });
});
