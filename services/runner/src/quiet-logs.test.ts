import { mkdirSync, writeFileSync } from 'node:fs';
import { type Bus, readTaskLog, type TaskLogEvent } from '@computepods/bus';
import {
  buckets,
  streams,
  subjects,
  type TaskLogStream,
  TaskRecord,
  type TaskSubmitted,
} from '@computepods/protocol';
import { NatsServer, TempDir } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningRunner, startRunner } from './runner.js';
import { localRunnerConfig, quietBus } from './test-runner-kit.js';

const P = 'quietlogs';

/**
 * What a task's logs cost on the task-log stream: an output the task left empty is listed in its
 * end record and gets no message at all (it had an end marker each), and readers given the
 * record end it with the record's state. Real runner, real nats-server, real processes.
 */
describe('empty task outputs: listed in the end record, nothing on the log stream', () => {
  let nats: NatsServer;
  let bus: Bus;
  let runner: RunningRunner | undefined;
  const dir = new TempDir('cp-quiet-logs-');
  const ws = dir.join('ws');

  beforeAll(async () => {
    mkdirSync(ws);
    nats = await NatsServer.start();
    bus = await quietBus({ servers: nats.url, service: 'runner', project: P });
    runner = await startRunner(bus, localRunnerConfig(P, dir.join('state'), ws));
  });
  afterAll(async () => {
    await runner?.stop();
    await bus?.close();
    await nats?.[Symbol.asyncDispose]();
    dir[Symbol.dispose]();
  });

  const task = (taskId: string, command: string): TaskSubmitted => ({
    taskId,
    resource: 'local',
    command,
    cwd: ws,
    env: {},
    gpu: false,
  });
  /** Messages the task-log stream holds on one task's subject. */
  const onStream = async (taskId: string, s: TaskLogStream): Promise<number> => {
    const subject = subjects.taskLog(P, 'local', taskId, s);
    const info = await bus.jsm.streams.info(streams.taskLogs(P), { subjects_filter: subject });
    return info.state.subjects?.[subject] ?? 0;
  };
  const read = async (taskId: string, follow: boolean) => {
    const kv = await bus.kv(buckets.tasks(P), TaskRecord);
    const events: TaskLogEvent[] = [];
    await readTaskLog(bus, {
      queue: 'local',
      taskId,
      streams: ['stdout', 'stderr'],
      follow,
      record: async () => (await kv.get(taskId))?.value,
      onEvent: (e) => {
        events.push(e);
      },
    });
    return events;
  };

  it('ends a live follow of an output that stays empty once the end is recorded', async () => {
    // Followed while the task runs (the UI's default: stderr, which most tasks leave empty):
    // no end marker comes for stderr, the record's end ends it.
    const gate = dir.join('gate-live');
    await bus.publish(
      'task.submitted',
      subjects.tasks(P, 'local'),
      task('q-live', `echo started; while [ ! -e ${gate} ]; do sleep 0.05; done; echo over`),
    );
    const kv = await bus.kv(buckets.tasks(P), TaskRecord);
    await kv.waitFor('q-live', (r) => r.state === 'running');
    const events: TaskLogEvent[] = [];
    let sawStart: () => void = () => {};
    const started = new Promise<void>((r) => {
      sawStart = r;
    });
    const follow = readTaskLog(bus, {
      queue: 'local',
      taskId: 'q-live',
      streams: ['stdout', 'stderr'],
      follow: true,
      record: async () => (await kv.get('q-live'))?.value,
      onEvent: (e) => {
        events.push(e);
        if (e.kind === 'data') sawStart();
      },
    });
    await started;
    expect(events.some((e) => e.kind === 'end')).toBe(false);
    writeFileSync(gate, '');
    await follow;
    expect(events.filter((e) => e.kind === 'end')).toEqual([
      {
        kind: 'end',
        stream: 'stdout',
        offset: 13,
        state: 'finished',
        exitCode: 0,
        droppedBytes: 0,
      },
      { kind: 'end', stream: 'stderr', offset: 0, state: 'finished', exitCode: 0, droppedBytes: 0 },
    ]);
    expect((await kv.get('q-live'))?.value.emptyLogs).toEqual(['stderr']);
  });

  it('does the same for tasks that waited for a lane and ended before their running record', async () => {
    // Both lanes held: the next tasks wait, start as a lane frees, and end within the
    // spawner's pid hold: running and the end are one write, their logs never followed.
    const kv = await bus.kv(buckets.tasks(P), TaskRecord);
    const gate = dir.join('gate-queued');
    for (const id of ['w-hold1', 'w-hold2'])
      await bus.publish(
        'task.submitted',
        subjects.tasks(P, 'local'),
        task(id, `while [ ! -e ${gate} ]; do sleep 0.02; done`),
      );
    const cases = [
      { taskId: 'w-none', command: 'true', state: 'finished', empty: ['stdout', 'stderr'] },
      { taskId: 'w-out', command: 'echo out', state: 'finished', empty: ['stderr'] },
      { taskId: 'w-err', command: 'echo err >&2; exit 3', state: 'failed', empty: ['stdout'] },
    ] as const;
    for (const c of cases)
      await bus.publish('task.submitted', subjects.tasks(P, 'local'), task(c.taskId, c.command));
    for (const c of cases) await kv.waitFor(c.taskId, (r) => r.state === 'submitted');
    writeFileSync(gate, '');
    for (const c of cases) {
      const rec = await kv.waitFor(c.taskId, (r) => ['finished', 'failed'].includes(r.state));
      expect(rec.state).toBe(c.state);
      expect(rec.history.map((h) => h.state)).toEqual(['created', 'submitted', 'running', c.state]);
      expect(rec.emptyLogs ?? []).toEqual(c.empty);
    }
    expect(runner?.executor.stats().startedBeforeRecord).toBeGreaterThanOrEqual(3);
    const out = await read('w-out', true);
    expect(Buffer.concat(out.flatMap((e) => (e.kind === 'data' ? [e.data] : []))).toString()).toBe(
      'out\n',
    );
    expect(
      out
        .filter((e) => e.kind === 'end')
        .map((e) => e.stream)
        .sort(),
    ).toEqual(['stderr', 'stdout']);
    expect(await onStream('w-none', 'stdout')).toBe(0);
    expect(await onStream('w-out', 'stderr')).toBe(0);
  });

  it('records which outputs stayed empty, and publishes only the others', async () => {
    const kv = await bus.kv(buckets.tasks(P), TaskRecord);
    const cases = [
      { taskId: 'q-none', command: 'true', state: 'finished', empty: ['stdout', 'stderr'] },
      { taskId: 'q-out', command: 'echo out', state: 'finished', empty: ['stderr'] },
      { taskId: 'q-err', command: 'echo err >&2; exit 3', state: 'failed', empty: ['stdout'] },
    ] as const;
    for (const c of cases) {
      await bus.publish('task.submitted', subjects.tasks(P, 'local'), task(c.taskId, c.command));
      const rec = await kv.waitFor(c.taskId, (r) => ['finished', 'failed'].includes(r.state));
      expect(rec.state).toBe(c.state);
      expect(rec.emptyLogs ?? []).toEqual(c.empty);
    }

    // Followed after the end: the empty outputs end at once with the record's state; the
    // others are read to their end marker.
    const none = await read('q-none', true);
    expect(none).toEqual([
      { kind: 'end', stream: 'stdout', offset: 0, state: 'finished', exitCode: 0, droppedBytes: 0 },
      { kind: 'end', stream: 'stderr', offset: 0, state: 'finished', exitCode: 0, droppedBytes: 0 },
    ]);
    const err = await read('q-err', true);
    expect(err.filter((e) => e.kind === 'end')).toEqual([
      { kind: 'end', stream: 'stdout', offset: 0, state: 'failed', exitCode: 3, droppedBytes: 0 },
      { kind: 'end', stream: 'stderr', offset: 4, state: 'failed', exitCode: 3, droppedBytes: 0 },
    ]);
    expect(Buffer.concat(err.flatMap((e) => (e.kind === 'data' ? [e.data] : []))).toString()).toBe(
      'err\n',
    );
    // A snapshot read says the same: the empty output ended, nothing in it.
    expect((await read('q-out', false)).filter((e) => e.stream === 'stderr')).toEqual([
      { kind: 'end', stream: 'stderr', offset: 0, state: 'finished', exitCode: 0, droppedBytes: 0 },
      { kind: 'sofar', stream: 'stderr', offset: 0 },
    ]);

    // Stopping the runner waits for every log it was finishing: what the stream took is final.
    await runner?.stop();
    runner = undefined;
    const counts = Object.fromEntries(
      await Promise.all(
        cases.flatMap((c) =>
          (['stdout', 'stderr'] as const).map(
            async (s) => [`${c.taskId}.${s}`, await onStream(c.taskId, s)] as const,
          ),
        ),
      ),
    );
    // A piece and an end marker for each output written to; nothing for an empty one (each
    // had an end marker: 6 messages for these three tasks, now 4).
    expect(counts).toEqual({
      'q-none.stdout': 0,
      'q-none.stderr': 0,
      'q-out.stdout': 2,
      'q-out.stderr': 0,
      'q-err.stdout': 0,
      'q-err.stderr': 2,
    });
  });
});
