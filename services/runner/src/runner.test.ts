import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import type { Bus } from '@computepods/bus';
import { buckets, Envelope, envelope, streams, subjects, TaskRecord } from '@computepods/protocol';
import { defined, NatsServer, TempDir, until } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningRunner, startRunner } from './runner.js';
import { localRunnerConfig, quietBus } from './test-runner-kit.js';

const P = 'runnertest';

describe('runner v1 (local) over a real nats-server', () => {
  let nats: NatsServer;
  let bus: Bus;
  let runner: RunningRunner;
  const dir = new TempDir('cp-runner-');

  // Tasks may run in ws/ only; `outside` stands for a home directory next to it.
  const ws = dir.join('ws');
  const outside = dir.join('outside');

  beforeAll(async () => {
    mkdirSync(ws);
    mkdirSync(outside);
    writeFileSync(
      dir.join('profile.json'),
      JSON.stringify({ resource_type: 'local', name: 'Lab', id: 'lab' }),
    );
    nats = await NatsServer.start();
    bus = await quietBus({ servers: nats.url, service: 'runner', project: P });
    runner = await startRunner(bus, {
      ...localRunnerConfig(P, dir.join('state'), ws),
      profileFile: dir.join('profile.json'),
    });
  });
  afterAll(async () => {
    await runner?.stop();
    await bus?.close();
    await nats?.[Symbol.asyncDispose]();
    dir[Symbol.dispose]();
  });

  async function finalState(taskId: string) {
    const kv = await bus.kv(buckets.tasks(P), TaskRecord);
    for (let i = 0; i < 500; i++) {
      const r = (await kv.get(taskId))?.value;
      if (r && ['finished', 'failed', 'killed'].includes(r.state)) return r;
      await new Promise((res) => setTimeout(res, 20));
    }
    throw new Error(`task ${taskId} did not end`);
  }

  it('runs a task once, records every state, and ignores a redelivered duplicate', async () => {
    const out = join(ws, 'count');
    const task = {
      taskId: 't-1',
      resource: 'local',
      command: `echo run >> ${out}; echo to-stderr >&2`,
      cwd: ws,
    };
    await bus.publish('task.submitted', subjects.tasks(P, 'local'), task, { msgId: 'a' });
    const rec = await finalState('t-1');
    expect(rec.state).toBe('finished');
    expect(rec.history.map((h) => h.state)).toEqual([
      'created',
      'submitted',
      'running',
      'finished',
    ]);
    expect(readFileSync(defined(rec.stderrPath, 'rec.stderrPath'), 'utf8')).toBe('to-stderr\n');
    // same task again under another msgId (a retried chef): not run twice
    await bus.publish('task.submitted', subjects.tasks(P, 'local'), task, { msgId: 'b' });
    await bus.publish('task.submitted', subjects.tasks(P, 'local'), {
      ...task,
      taskId: 't-2',
      command: 'exit 3',
    });
    expect((await finalState('t-2')).exitCode).toBe(3);
    expect(readFileSync(out, 'utf8')).toBe('run\n');
    // Events are plain publishes; the events stream stores them all the same.
    await until(async () => {
      const m = await bus.jsm.streams
        .getMessage(streams.events(P), { last_by_subj: subjects.taskState(P) })
        .catch(() => undefined);
      const body = m && (Envelope.parse(m.json()).body as { taskId: string; state: string });
      return body?.taskId === 't-2' && body.state === 'failed';
    }, 'the last task event in the events stream');
  });

  it('announces one event per record write: a task admitted to a free slot, running then finished', async () => {
    // Both slots are free (the tasks above ended), so the task is recorded created, submitted
    // and running in one write: one event for it, then one for its end.
    const seen: { state: string; previous?: string }[] = [];
    const sub = bus.nc.subscribe(subjects.taskState(P), {
      callback: (_err, m) => {
        const body = Envelope.parse(m.json()).body as {
          taskId: string;
          state: string;
          previous?: string;
        };
        if (body.taskId === 'ev-1') seen.push({ state: body.state, previous: body.previous });
      },
    });
    await bus.nc.flush();
    await bus.publish('task.submitted', subjects.tasks(P, 'local'), {
      taskId: 'ev-1',
      resource: 'local',
      command: 'true',
      cwd: ws,
    });
    const rec = await finalState('ev-1');
    expect(rec.history.map((h) => h.state)).toEqual([
      'created',
      'submitted',
      'running',
      'finished',
    ]);
    await until(() => seen.some((e) => e.state === 'finished'), 'the finished event');
    sub.unsubscribe();
    expect(seen).toEqual([
      { state: 'running', previous: 'submitted' },
      { state: 'finished', previous: 'running' },
    ]);
  });

  it('does not run a task that already has a record (another runner has it), and takes it off the queue', async () => {
    const kv = await bus.kv(buckets.tasks(P), TaskRecord);
    const ran = join(ws, 'other-ran');
    const task = {
      taskId: 'o-1',
      resource: 'local',
      command: `touch ${ran}`,
      cwd: ws,
      env: {},
      gpu: false,
    };
    const time = new Date().toISOString();
    const theirs = {
      task,
      state: 'running' as const,
      runner: 'r-other',
      history: [{ state: 'running' as const, time }],
      updated: time,
    };
    const revision = await kv.create('o-1', theirs);
    await bus.publish('task.submitted', subjects.tasks(P, 'local'), task);
    await until(async () => {
      const c = await bus.jsm.consumers.info(streams.tasks(P), 'runner-local');
      return c.num_pending === 0 && c.num_ack_pending === 0;
    }, 'the runner to take the task off its queue');
    const after = await kv.get('o-1');
    expect(after?.revision).toBe(revision);
    expect(after?.value.runner).toBe('r-other');
    expect(existsSync(ran)).toBe(false);
  });

  it('fails a task that times out and kills its process group', async () => {
    await bus.publish('task.submitted', subjects.tasks(P, 'local'), {
      taskId: 't-slow',
      resource: 'local',
      command: 'sleep 30 & sleep 30',
      cwd: ws,
      timeoutMs: 300,
    });
    const rec = await finalState('t-slow');
    expect(rec.state).toBe('failed');
    expect(rec.reason).toMatch(/timed out/);
  });

  it('pauses, resumes and kills tasks on request over task.control, and refuses what it cannot do', async () => {
    const control = async (taskId: string, action: 'pause' | 'resume' | 'kill') => {
      const msg = await bus.nc.request(
        subjects.taskControl(P),
        bus.encode('task.control', { taskId, action }),
        { timeout: 5_000 },
      );
      return JSON.parse(new TextDecoder().decode(msg.data)) as {
        ok: boolean;
        result?: { state: string };
        error?: { code: string; message: string };
      };
    };
    const gate = join(ws, 'control-gate');
    const blocker = (id: string) => ({
      taskId: id,
      resource: 'local',
      command: `while [ ! -e ${gate} ]; do sleep 0.05; done`,
      cwd: ws,
    });
    // parallel 2: two blockers take both slots, the third waits in the queue
    for (const id of ['c-1', 'c-2'])
      await bus.publish('task.submitted', subjects.tasks(P, 'local'), blocker(id));
    const kv = await bus.kv(buckets.tasks(P), TaskRecord);
    await kv.waitFor('c-2', (r) => r.state === 'running');
    await bus.publish('task.submitted', subjects.tasks(P, 'local'), {
      taskId: 'c-3',
      resource: 'local',
      command: 'echo third',
      cwd: ws,
    });
    await kv.waitFor('c-3', (r) => r.state === 'submitted');
    expect(await control('c-3', 'pause')).toEqual({
      ok: true,
      result: { taskId: 'c-3', state: 'paused' },
    });
    const refused = await control('c-1', 'pause');
    expect(refused.ok).toBe(false);
    expect(refused.error?.code).toBe('CP_ILLEGAL_TRANSITION');
    expect(refused.error?.message).toMatch(/kill it, or wait/);
    expect((await control('c-1', 'kill')).result?.state).toBe('killed');
    expect((await finalState('c-1')).state).toBe('killed');
    writeFileSync(gate, '');
    expect((await finalState('c-2')).state).toBe('finished');
    expect((await kv.get('c-3'))?.value.state).toBe('paused');
    expect((await control('c-3', 'resume')).result?.state).toBe('submitted');
    const third = await finalState('c-3');
    expect(third.state).toBe('finished');
    expect(third.history.map((h) => h.state)).toEqual([
      'created',
      'submitted',
      'paused',
      'submitted',
      'running',
      'finished',
    ]);
  });

  it('answers a malformed task.control with CP_MESSAGE_INVALID naming the field, and goes on', async () => {
    const ask = async (data: string) => {
      const msg = await bus.nc.request(subjects.taskControl(P), data, { timeout: 5_000 });
      return JSON.parse(new TextDecoder().decode(msg.data)) as {
        ok: boolean;
        result?: { state: string };
        error?: { code: string; message: string; field?: string };
      };
    };
    // Sent as they are: bus.encode refuses an invalid body.
    const raw = (type: 'task.control' | 'build.cancel', body: object) =>
      JSON.stringify(envelope(type, body as never, { project: P, source: 'test' }));
    const bad: Array<[string, string]> = [
      ['{"oops', ''],
      [raw('task.control', { taskId: 'c-x', action: 'explode' }), 'body.action'],
      [raw('task.control', { action: 'kill' }), 'body.taskId'],
      [raw('build.cancel', { buildId: 'b', reason: 'r' }), 'type'],
    ];
    for (const [data, field] of bad) {
      const answer = await ask(data);
      expect(answer.ok).toBe(false);
      expect(answer.error).toMatchObject({ code: 'CP_MESSAGE_INVALID', field });
    }
    // The subscription still answers a valid request.
    await bus.publish('task.submitted', subjects.tasks(P, 'local'), {
      taskId: 'c-after',
      resource: 'local',
      command: 'sleep 60',
      cwd: ws,
    });
    const kv = await bus.kv(buckets.tasks(P), TaskRecord);
    await kv.waitFor('c-after', (r) => r.state === 'running');
    expect(await ask(bus.encode('task.control', { taskId: 'c-after', action: 'kill' }))).toEqual({
      ok: true,
      result: { taskId: 'c-after', state: 'killed' },
    });
  });

  /** Waits until the runner's queue is empty and nothing is unacknowledged. */
  const drained = () =>
    until(async () => {
      const c = await bus.jsm.consumers.info(streams.tasks(P), 'runner-local');
      return c.num_pending === 0 && c.num_ack_pending === 0;
    }, 'the runner to take every task off its queue (acknowledged)');

  it('refuses a forged task whose cwd holds an SSH key: recorded failed, never run, acknowledged, nothing copied', async () => {
    const ssh = join(outside, '.ssh');
    mkdirSync(ssh);
    writeFileSync(join(ssh, 'id_ed25519'), 'FAKE PRIVATE KEY\n');
    const before = readdirSync(ssh);
    await bus.publish('task.submitted', subjects.tasks(P, 'local'), {
      taskId: 'evil-key',
      resource: 'local',
      command: 'cp id_ed25519 authorized_keys; touch ran',
      cwd: ssh,
      files: { inputs: ['id_ed25519'], outputs: ['authorized_keys'] },
    });
    const rec = await finalState('evil-key');
    expect(rec.state).toBe('failed');
    expect(rec.reason).toBe(
      `cwd ${JSON.stringify(ssh)} is outside the runner's workspace roots (CP_WORKSPACE_ROOTS=${ws}); the task was not run. Run it from a workspace inside them, or add its workspace to CP_WORKSPACE_ROOTS on the runner`,
    );
    expect(rec.history.map((h) => h.state)).toEqual(['created', 'failed']);
    expect(rec.exitCode).toBeNull();
    await drained();
    expect(readdirSync(ssh)).toEqual(before);
    expect(readFileSync(join(ssh, 'id_ed25519'), 'utf8')).toBe('FAKE PRIVATE KEY\n');
    // nothing under the runner's task folders either: it was never handed to the backend
    expect(existsSync(dir.join('state', 'tasks', 'evil-key'))).toBe(false);
  });

  it('refuses a cwd that reaches outside through a symlink or "..", and one that does not exist', async () => {
    symlinkSync(outside, join(ws, 'home-link'));
    const marker = join(outside, 'ran');
    const forged = (taskId: string, cwd: string) =>
      bus.publish('task.submitted', subjects.tasks(P, 'local'), {
        taskId,
        resource: 'local',
        command: `touch ${marker}`,
        cwd,
      });
    await forged('via-link', join(ws, 'home-link'));
    await forged('via-dots', `${ws}/../outside`);
    await forged('nowhere', join(ws, 'missing'));
    const link = await finalState('via-link');
    expect(link.state).toBe('failed');
    expect(link.reason).toMatch(
      new RegExp(`is outside the runner's workspace roots .*: it resolves to "${outside}"`),
    );
    expect((await finalState('via-dots')).reason).toMatch(
      /is outside the runner's workspace roots/,
    );
    expect((await finalState('nowhere')).reason).toMatch(/does not exist on the runner/);
    await drained();
    expect(existsSync(marker)).toBe(false);
  });

  it("refuses a task asking for another profile than the runner's, naming both; its own profile runs", async () => {
    const marker = join(ws, 'profile-ran');
    const task = (taskId: string, profile: string) => ({
      taskId,
      resource: 'local',
      profile,
      command: `echo ${taskId} >> ${marker}`,
      cwd: ws,
    });
    await bus.publish('task.submitted', subjects.tasks(P, 'local'), task('p-other', 'admin'));
    await bus.publish('task.submitted', subjects.tasks(P, 'local'), task('p-mine', 'lab'));
    const other = await finalState('p-other');
    expect(other.state).toBe('failed');
    expect(other.reason).toMatch(/^profile "admin" is not this runner's profile "lab"/);
    expect((await finalState('p-mine')).state).toBe('finished');
    await drained();
    expect(readFileSync(marker, 'utf8')).toBe('p-mine\n');
  });
});
