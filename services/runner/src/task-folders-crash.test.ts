import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Bus, TypedKv } from '@computepods/bus';
import { streams, subjects, type TaskRecord } from '@computepods/protocol';
import { defined, type ManagedProcess, NatsServer, TempDir, until } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  publishedStdout,
  quietBus,
  runnerProcess,
  runnerReady,
  tasksKv,
} from './test-runner-kit.js';

// The runner service itself, killed with SIGKILL while a task's log is not yet published
// (the task-log stream deleted: no piece, no end marker can be stored), then started again
// with CP_JOB_KEEP_S=0 and CP_JOB_KEEP_FAILED_S=0: its first sweep, right after it adopts, must
// leave the task's folder until the whole log and its end are on the stream; then it goes.
const P = 'foldercrash';
const tmp = new TempDir('cp-folder-crash-');
let nats: NatsServer;
let bus: Bus;
let kv: TypedKv<typeof TaskRecord>;

beforeAll(async () => {
  mkdirSync(tmp.join('ws'));
  nats = await NatsServer.start();
  bus = await quietBus({ servers: nats.url, service: 'folder-crash-test', project: P });
  kv = await tasksKv(bus, P);
});
afterAll(async () => {
  await bus?.close();
  await nats?.[Symbol.asyncDispose]();
  tmp[Symbol.dispose]();
});

function runner(): ManagedProcess {
  return runnerProcess(nats.url, P, {
    CP_WORKSPACE_ROOTS: tmp.join('ws'),
    CP_STATE_DIR: tmp.join('state'),
    CP_RUNNER_ID: 'r-crash',
    CP_JOB_KEEP_S: '0',
    CP_JOB_KEEP_FAILED_S: '0',
  });
}

describe('runner service killed with SIGKILL before a log was published', {
  timeout: 180_000,
}, () => {
  it('publishes the whole log after the restart before its first sweeps remove the folder', async () => {
    const first = runner();
    await runnerReady(first);
    // Held: nothing can be stored on the task-log stream until a runner makes it again.
    await bus.jsm.streams.delete(streams.taskLogs(P));
    await bus.publish('task.submitted', subjects.tasks(P, 'local'), {
      taskId: 'k-1',
      resource: 'local',
      command: "printf 'written before the kill\\n'",
      cwd: tmp.join('ws'),
    });
    let rec: TaskRecord | undefined;
    await until(async () => {
      rec = (await kv.get('k-1'))?.value;
      return rec?.state === 'finished';
    }, 'the task recorded finished');
    const stdout = defined(rec?.stdoutPath, 'stdoutPath');
    await first.kill9();
    expect(readFileSync(stdout, 'utf8')).toBe('written before the kill\n');

    // Started again: it makes the stream again, holds the ended task's log, adopts, sweeps.
    const second = runner();
    try {
      await runnerReady(second);
      let log: Awaited<ReturnType<typeof publishedStdout>> = { text: '', end: undefined };
      await until(async () => {
        log = await publishedStdout(bus, 'local', 'k-1');
        return log.end !== undefined;
      }, 'the end marker of k-1 on the stream');
      expect(log.text).toBe('written before the kill\n');
      expect(log.end).toMatchObject({ kind: 'end', state: 'finished', exitCode: 0 });
      // Then the folder goes, at the next sweep (every minute).
      await until(
        () => !existsSync(dirname(stdout)),
        'the folder of k-1 swept',
        120_000,
        () => second.tail(4000),
      );
    } finally {
      await second.stop();
    }
  });
});
