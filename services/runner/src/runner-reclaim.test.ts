import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Bus, TypedKv } from '@computepods/bus';
import { streams, subjects, type TaskRecord, type TaskSubmitted } from '@computepods/protocol';
import {
  defined,
  type ManagedProcess,
  NatsServer,
  TempDir,
  until as waitUntil,
} from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { quietBus, runnerProcess, runnerReady, tasksKv } from './test-runner-kit.js';

// A runner process killed with SIGKILL while task messages it pulled are not yet recorded.
// The consumer's ack wait is ten minutes here, so within the test's time only the runner that
// starts next (reclaim.ts) can have them delivered again.
const P = 'reclaim';
const STREAM = streams.tasks(P);
const DURABLE = 'runner-local';
const tmp = new TempDir('cp-runner-reclaim-');
let nats: NatsServer;
let bus: Bus;
let kv: TypedKv<typeof TaskRecord>;

beforeAll(async () => {
  nats = await NatsServer.start();
  bus = await quietBus({ servers: nats.url, service: 'reclaim-test', project: P });
  kv = await tasksKv(bus, P);
});
afterAll(async () => {
  await bus?.close();
  await nats?.[Symbol.asyncDispose]();
  tmp[Symbol.dispose]();
});

function runner(dir: string, id: string): ManagedProcess {
  return runnerProcess(
    nats.url,
    P,
    {
      CP_RESOURCE: 'local',
      CP_RUNNER_ID: id,
      CP_STATE_DIR: join(dir, 'state'),
      CP_WORKSPACE_ROOTS: dir,
      CP_RUNNER_ACK_WAIT_MS: String(10 * 60_000),
    },
    { name: id },
  );
}

const until = (cond: () => Promise<boolean>, what: string, diag?: () => string) =>
  waitUntil(cond, what, 60_000, diag);

const consumerInfo = () => bus.jsm.consumers.info(STREAM, DURABLE);

/**
 * A task done by a first runner; then that runner is frozen (SIGSTOP) with a pull request
 * open, a new task and a second message for the done task are delivered to it, and it is
 * killed with SIGKILL: both messages are pending on the durable, neither recorded by it.
 * `next` is started and both must be settled: the new task run once, the done one not again.
 */
async function killWithPulledTasks(name: string, nextId: string) {
  const dir = tmp.join(name);
  mkdirSync(join(dir, 'runs'), { recursive: true });
  const mk = (id: string): TaskSubmitted => ({
    taskId: id,
    resource: 'local',
    command: `echo run >> ${dir}/runs/${id}`,
    cwd: dir,
    env: {},
    gpu: false,
  });
  const done = mk(`${name}-done`);
  const pulled = mk(`${name}-pulled`);
  const first = runner(dir, `r-${name}`);
  const logs = () => `--- first\n${first.tail(3000)}`;
  await runnerReady(first);
  await bus.publish('task.submitted', subjects.tasks(P, 'local'), done);
  await until(
    async () => (await kv.get(done.taskId))?.value.state === 'finished',
    'the first task to finish',
    logs,
  );
  await until(
    async () => (await consumerInfo()).num_ack_pending === 0,
    'its message acknowledged',
    logs,
  );
  const doneBefore = defined(await kv.get(done.taskId), '(await kv.get(done.taskId))');

  first.signal('SIGSTOP');
  // The frozen runner's pull requests expire (PULL.expires, 5 s). The messages are then pulled
  // from its consumer here and left unacknowledged, as a runner killed between its pull and its
  // record leaves them: the server holds the same state. (Publishing to the frozen runner's open
  // pull request raced that request's expiry: a message sent after it was never delivered, and
  // the test hung, as test/src/runner-reclaim.test.ts did in fresh-clone CI run 143.)
  await until(
    async () => (await consumerInfo()).num_waiting === 0,
    'the frozen runner’s pull requests to expire',
    logs,
  );
  await bus.publish('task.submitted', subjects.tasks(P, 'local'), pulled);
  // The same task again (a redelivery, a duplicate submission): it already ended.
  await bus.publish('task.submitted', subjects.tasks(P, 'local'), done);
  const held = await (await bus.js.consumers.get(STREAM, DURABLE)).fetch({
    max_messages: 2,
    expires: 10_000,
  });
  const taken: string[] = [];
  for await (const m of held) taken.push(m.subject);
  expect(taken).toHaveLength(2);
  expect((await consumerInfo()).num_ack_pending).toBe(2);
  await first.kill9();
  expect(await kv.get(pulled.taskId)).toBeUndefined();

  const next = runner(dir, nextId);
  try {
    await runnerReady(next);
    const both = () => `${logs()}\n--- next\n${next.tail(3000)}`;
    await until(
      async () => (await kv.get(pulled.taskId))?.value.state === 'finished',
      'the pulled task to run after the restart',
      both,
    );
    // Every message is acknowledged: the done task's second message too, without a run.
    await until(
      async () => (await consumerInfo()).num_ack_pending === 0,
      'both messages acknowledged',
      both,
    );
    // The process's output and NATS are two channels: a line logged before an ack may reach
    // this process after the ack is seen.
    await next.waitForOutput(/pulled and never acknowledged/);
    await next.waitForOutput(/task already has a record; not running it again/);
  } finally {
    await next.stop();
  }
  const info = await consumerInfo();
  expect(info.num_pending).toBe(0);
  expect(info.config.ack_wait).toBe(10 * 60_000 * 1_000_000);

  const rec = defined(await kv.get(pulled.taskId), '(await kv.get(pulled.taskId))').value;
  expect(rec.runner).toBe(nextId);
  expect(rec.history.map((h) => h.state)).toEqual(['created', 'submitted', 'running', 'finished']);
  expect(readFileSync(join(dir, 'runs', pulled.taskId), 'utf8')).toBe('run\n');
  // The task that had ended is untouched: the same record revision, one run.
  expect((await kv.get(done.taskId))?.revision).toBe(doneBefore.revision);
  expect(readFileSync(join(dir, 'runs', done.taskId), 'utf8')).toBe('run\n');
}

describe('task messages a killed runner pulled and never recorded', { timeout: 180_000 }, () => {
  it('are run at once by the runner restarted with the same id; an ended task is not run again', async () => {
    await killWithPulledTasks('same', 'r-same');
  });

  it('are run at once by another runner of the queue that starts', async () => {
    await killWithPulledTasks('other', 'r-other-2');
  });
});
