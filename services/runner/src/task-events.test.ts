import { mkdirSync } from 'node:fs';
import { Bus, quietLogger } from '@computepods/bus';
import { Envelope, subjects, TaskStateChanged, type TaskSubmitted } from '@computepods/protocol';
import { NatsServer, TempDir, until } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningRunner, startRunner } from './runner.js';
import { TaskEvents } from './task-events.js';
import { localRunnerConfig } from './test-runner-kit.js';

const P = 'taskevents';

describe('TaskEvents over a real nats-server', () => {
  let nats: NatsServer;
  let bus: Bus;
  let watcher: Bus;
  const seen: string[] = [];
  const logger = quietLogger('task-events-test');

  beforeAll(async () => {
    nats = await NatsServer.start();
    bus = await Bus.connect({ servers: nats.url, service: 'runner', project: P, logger });
    watcher = await Bus.connect({ servers: nats.url, service: 'ui', project: P, logger });
    watcher.nc.subscribe(subjects.taskState(P), {
      callback: (_e, m) => {
        const { body } = JSON.parse(new TextDecoder().decode(m.data)) as {
          body: TaskStateChanged;
        };
        seen.push(`${body.taskId}:${body.state}`);
      },
    });
    await watcher.nc.flush();
  });
  afterAll(async () => {
    await bus?.close();
    await watcher?.close();
    await nats?.[Symbol.asyncDispose]();
  });

  const event = (taskId: string, state: TaskStateChanged['state']): TaskStateChanged => ({
    taskId,
    resource: 'local',
    state,
  });
  /** Everything published by `bus` so far has reached the watcher. */
  const settled = async () => {
    await bus.nc.flush();
    await watcher.nc.flush();
  };

  it('holds events while a task runs until the next record write, in order; publishes at once when nothing runs', async () => {
    seen.length = 0;
    // A hold longer than the test: only a record write or an idle executor lets them go.
    const events = new TaskEvents(bus, 600_000);
    events.emit(event('a', 'running'), undefined);
    events.emit(event('b', 'submitted'), undefined);
    await settled();
    expect(seen).toEqual([]);
    events.beforeWrite();
    await settled();
    expect(seen).toEqual(['a:running', 'b:submitted']);
    // b runs too; a ends while b runs (held), then b ends: nothing runs, all go at once.
    events.emit(event('b', 'running'), undefined);
    events.emit(event('a', 'finished'), undefined);
    await settled();
    expect(seen).toHaveLength(2);
    events.emit(event('b', 'failed'), undefined);
    await settled();
    expect(seen).toEqual(['a:running', 'b:submitted', 'b:running', 'a:finished', 'b:failed']);
    events.flush();
  });

  it('holds them while a task waits for a lane too: one that ran in between is announced submitted, then ended', async () => {
    seen.length = 0;
    const events = new TaskEvents(bus, 600_000);
    events.emit(event('f', 'submitted'), undefined);
    events.emit(event('g', 'submitted'), undefined);
    // f started and ended before its running record: its end (with running) is one record.
    events.beforeWrite();
    events.emit(event('f', 'finished'), undefined);
    await settled();
    expect(seen).toEqual(['f:submitted', 'g:submitted']);
    events.beforeWrite();
    await settled();
    expect(seen).toEqual(['f:submitted', 'g:submitted', 'f:finished']);
    events.emit(event('g', 'finished'), undefined);
    await settled();
    expect(seen).toEqual(['f:submitted', 'g:submitted', 'f:finished', 'g:finished']);
  });

  it('publishes a held event after its hold without a record write, in an envelope any reader accepts', async () => {
    seen.length = 0;
    const envelopes: unknown[] = [];
    const sub = watcher.nc.subscribe(subjects.taskState(P), {
      callback: (_e, m) => {
        envelopes.push(JSON.parse(new TextDecoder().decode(m.data)));
      },
    });
    await watcher.nc.flush();
    const events = new TaskEvents(bus, 50);
    events.emit({ ...event('c', 'running'), buildId: 'b1' }, 'cid-c');
    await until(() => seen.includes('c:running'), 'the held event after its hold');
    // Sent with no parse of its own: the reader's parse takes it as it is.
    const [env] = envelopes;
    expect(Envelope.parse(env)).toMatchObject({ type: 'task.state', cid: 'cid-c', project: P });
    expect(TaskStateChanged.parse((env as { body: unknown }).body)).toEqual({
      ...event('c', 'running'),
      buildId: 'b1',
    });
    sub.unsubscribe();
    events.emit(event('c', 'finished'), undefined);
    await settled();
    expect(seen).toEqual(['c:running', 'c:finished']);
  });

  it('never throws when the connection is gone: the records are the truth', async () => {
    const other = await Bus.connect({ servers: nats.url, service: 'runner', project: P, logger });
    const events = new TaskEvents(other, 600_000);
    events.emit(event('e', 'running'), undefined);
    await other.close();
    expect(() => events.beforeWrite()).not.toThrow();
  });
});

describe("a runner's task events over a real nats-server", () => {
  let nats: NatsServer;
  let bus: Bus;
  let watcher: Bus;
  let runner: RunningRunner | undefined;
  const dir = new TempDir('cp-task-events-');
  const seen: string[] = [];
  const logger = quietLogger('task-events-runner-test');
  const RP = 'taskeventsrunner';

  beforeAll(async () => {
    mkdirSync(dir.join('ws'));
    nats = await NatsServer.start();
    bus = await Bus.connect({ servers: nats.url, service: 'runner', project: RP, logger });
    watcher = await Bus.connect({ servers: nats.url, service: 'ui', project: RP, logger });
    watcher.nc.subscribe(subjects.taskState(RP), {
      callback: (_e, m) => {
        const { body } = JSON.parse(new TextDecoder().decode(m.data)) as {
          body: TaskStateChanged;
        };
        seen.push(`${body.taskId}:${body.state}`);
      },
    });
    await watcher.nc.flush();
    runner = await startRunner(bus, {
      ...localRunnerConfig(RP, dir.join('state'), dir.join('ws')),
      // Longer than the test: an event leaves only with a write the runner makes anyway.
      eventHoldMs: 600_000,
    });
  });
  afterAll(async () => {
    await runner?.stop();
    await bus?.close();
    await watcher?.close();
    await nats?.[Symbol.asyncDispose]();
    dir[Symbol.dispose]();
  });

  it('announces a task admitted straight to running with the next record write, not alone with its ack', async () => {
    const task = (taskId: string, command: string): TaskSubmitted => ({
      taskId,
      resource: 'local',
      command,
      cwd: dir.join('ws'),
      env: {},
      gpu: false,
    });
    await watcher.publish('task.submitted', subjects.tasks(RP, 'local'), task('long', 'sleep 600'));
    await until(() => runner?.executor.get('long')?.state === 'running', 'the running record');
    // Its message's ack waits for a write as the event does: nothing made one for them.
    await bus.nc.flush();
    await watcher.nc.flush();
    expect(seen).toEqual([]);
    // Another task's record write takes the held event along.
    await watcher.publish('task.submitted', subjects.tasks(RP, 'local'), task('short', 'true'));
    await until(() => seen.includes('long:running'), 'the running event with the next record');
    await until(() => runner?.executor.get('short')?.state === 'finished', 'the short task ended');
    // Killed: its end record is written, and the events held (nothing runs now) go at once.
    await runner?.executor.kill('long');
    await until(() => seen.includes('long:killed'), 'the killed event');
    // Its process gone before the runner stops (a fresh-clone CI run found the sleep running
    // minutes after this file ended: killed before its pid came, then nobody left to signal it).
    await until(() => {
      const rec = runner?.executor.get('long');
      return rec?.state === 'killed' && rec.stopping !== true;
    }, 'the killed task gone');
    expect(seen[0]).toBe('long:running');
    expect(seen.at(-1)).toBe('long:killed');
    expect(seen).toContain('short:finished');
  });
});
