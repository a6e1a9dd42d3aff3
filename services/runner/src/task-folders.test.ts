import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { Bus, ensureProjectStreams, quietLogger } from '@computepods/bus';
import { LocalBackend } from '@computepods/executors';
import { buckets, streams, subjects, TaskRecord } from '@computepods/protocol';
import { defined, NatsServer, TempDir, until } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunnerConfig } from './config.js';
import { type RunningRunner, startRunner } from './runner.js';
import { publishedStdout } from './test-runner-kit.js';

const P = 'taskfolders';

/*
 * The keep-0 race, at its cause: with CP_JOB_KEEP_S=0 and CP_JOB_KEEP_FAILED_S=0 a sweep must
 * not remove a task's folder while the task-log publisher still has to read its last piece and
 * publish the end marker. The publisher is held deterministically: the project's task-log
 * stream is deleted, so no piece and no end marker can be stored (the publisher tries again);
 * the stream made again lets it finish. Real nats-server, real processes and folders; the
 * sweeps are run by hand (sweepNow), never waited for.
 */
describe('runner (local): task folders go only once their logs are published', () => {
  let nats: NatsServer;
  let bus: Bus;
  const dir = new TempDir('cp-task-folders-');
  const logger = quietLogger('task-folders-test');
  const ws = dir.join('ws');
  const running: RunningRunner[] = [];

  const config = (runnerId: string): RunnerConfig => ({
    project: P,
    resource: 'local',
    queue: 'local',
    runnerId,
    stateDir: dir.join(`state-${runnerId}`),
    parallel: 2,
    intake: 16,
    workspaceRoots: [ws],
    profileFile: dir.join('profile.json'),
    jobKeep: { okMs: 0, failedMs: 0 },
    taskLogs: { pollMs: 20 },
  });
  async function start(runnerId: string) {
    const runner = await startRunner(bus, config(runnerId));
    running.push(runner);
    const backend = runner.executor.backend;
    if (!(backend instanceof LocalBackend)) throw new Error('the runner has no local backend');
    return { runner, backend };
  }
  async function stop(runner: RunningRunner) {
    running.splice(running.indexOf(runner), 1);
    await runner.stop();
  }

  beforeAll(async () => {
    mkdirSync(ws);
    writeFileSync(
      dir.join('profile.json'),
      JSON.stringify({ resource_type: 'local', name: 'Lab', id: 'lab' }),
    );
    nats = await NatsServer.start();
    bus = await Bus.connect({ servers: nats.url, service: 'runner', project: P, logger });
  });
  afterAll(async () => {
    await Promise.allSettled(running.map((r) => r.stop()));
    await bus?.close();
    await nats?.[Symbol.asyncDispose]();
    dir[Symbol.dispose]();
  });

  async function ended(taskId: string): Promise<TaskRecord> {
    const kv = await bus.kv(buckets.tasks(P), TaskRecord);
    let rec: TaskRecord | undefined;
    await until(async () => {
      rec = (await kv.get(taskId))?.value;
      return rec?.state === 'finished' || rec?.state === 'failed';
    }, `task ${taskId} ended`);
    return defined(rec, `the record of ${taskId}`);
  }

  const published = (taskId: string) => publishedStdout(bus, 'local', taskId);

  const submit = (taskId: string, command: string) =>
    bus.publish('task.submitted', subjects.tasks(P, 'local'), {
      taskId,
      resource: 'local',
      command,
      cwd: ws,
    });

  it("keeps a finished task's folder while its log publisher is held, and removes it once the end marker is acknowledged", async () => {
    const { runner, backend } = await start('r1');
    // Held: nothing can be stored on the task-log stream.
    await bus.jsm.streams.delete(streams.taskLogs(P));
    await submit('held-1', "printf 'the last piece\\n'");
    const rec = await ended('held-1');
    expect(rec.state).toBe('finished');
    const stdout = defined(rec.stdoutPath, 'stdoutPath');
    await backend.sweepNow();
    await backend.sweepNow();
    // Keep time 0 and two sweeps past its end: still there, as its log is not published.
    expect(readFileSync(stdout, 'utf8')).toBe('the last piece\n');

    // Released: the publisher's next try stores the piece and the end marker.
    await ensureProjectStreams(bus, P);
    let log: Awaited<ReturnType<typeof published>> = { text: '' };
    await until(async () => {
      log = await published('held-1');
      return log.end !== undefined;
    }, 'the end marker of held-1 on the stream');
    expect(log.text).toBe('the last piece\n');
    expect(log.end).toMatchObject({ kind: 'end', state: 'finished', exitCode: 0, droppedBytes: 0 });
    await until(async () => {
      await backend.sweepNow();
      return !existsSync(dirname(stdout));
    }, 'the folder of held-1 swept once its log is published');
    await stop(runner);
  });

  it('a runner stopped with a log unpublished and started again publishes it all before the folder goes', async () => {
    const first = await start('r2');
    await bus.jsm.streams.delete(streams.taskLogs(P));
    await submit('held-2', "printf 'before the restart\\n'; exit 3");
    const rec = await ended('held-2');
    expect(rec.state).toBe('failed');
    const stdout = defined(rec.stdoutPath, 'stdoutPath');
    await first.backend.sweepNow();
    await stop(first.runner);
    expect(readFileSync(stdout, 'utf8')).toBe('before the restart\n');

    // Started again (which makes the stream again): the log of the task that ended before is
    // held before the executor adopts and sweeps, so its first sweep leaves the folder.
    const second = await start('r2');
    let log: Awaited<ReturnType<typeof published>> = { text: '' };
    await until(async () => {
      log = await published('held-2');
      return log.end !== undefined;
    }, 'the end marker of held-2 on the stream');
    expect(log.text).toBe('before the restart\n');
    expect(log.end).toMatchObject({ kind: 'end', state: 'failed', exitCode: 3, droppedBytes: 0 });
    await until(async () => {
      await second.backend.sweepNow();
      return !existsSync(dirname(stdout));
    }, 'the folder of held-2 swept once its log is published');
  });
});
