import { writeFileSync } from 'node:fs';
import { type Bus, readTaskLog, type TaskLogEvent } from '@computepods/bus';
import { subjects } from '@computepods/protocol';
import {
  ensureSystemUser,
  killProcessesUsing,
  NatsServer,
  Slurm,
  shareDirs,
  startTogether,
  TempDir,
  until,
} from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  quietBus,
  resourceFiles,
  runnerProcess,
  runnerReady,
  testSlurmFields,
} from './test-runner-kit.js';

// A task run by a pilot worker (a runner inside a SLURM job, as cpuser through sudo) has its
// log published by that worker, under the queue's subject, followed live from here.
const P = 'pilotlogs';
const tmp = new TempDir('cp-runner-pilotlogs-');
let nats: NatsServer;
let slurm: Slurm;
let bus: Bus;

beforeAll(async () => {
  ensureSystemUser('cpuser');
  shareDirs(
    tmp,
    ['', 'jobs', 'tasks', 'ws'].map((d) => tmp.join(d)),
  );
  [nats, slurm] = await startTogether([NatsServer.start(), Slurm.start()]);
  bus = await quietBus({ servers: nats.url, service: 'pilotlogs-test', project: P });
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
    const resource = {
      type: 'slurm_sudo',
      name: 'SLURM cluster',
      id: 'hpc',
      ...testSlurmFields(slurm, tmp.path),
      pilot_config: { max_workers: 1, idle_timeout_s: 3, cpus_per_worker: 1 },
    };
    const profile = { name: 'sudo', resource_type: 'slurm_sudo', username: 'cpuser' };
    const runner = runnerProcess(nats.url, P, {
      CP_RESOURCE: 'hpc',
      CP_RUNNER_ID: 'r-hpc',
      ...resourceFiles(tmp.path, resource, profile),
      CP_STATE_DIR: tmp.join('state'),
      CP_WORKSPACE_ROOTS: tmp.path,
    });
    const gate = tmp.join('ws', 'gate');
    try {
      await runnerReady(runner);
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
