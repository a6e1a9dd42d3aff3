import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { Bus, quietLogger } from '@computepods/bus';
import { buckets, subjects, TaskRecord } from '@computepods/protocol';
import { defined, NatsServer, TempDir, until } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunnerConfig } from './config.js';
import { type RunningRunner, startRunner } from './runner.js';

/*
 * A task folder belongs to one run of a task, not to its id, since ids come back: a build's
 * task ids come from its attempt records, which expire (CP_RECORD_MAX_AGE_S) long before a
 * failed task's folder does (CP_JOB_KEEP_FAILED_S), and two projects (pnpm bench e2e's LaTeX
 * part: with and without projections) give the same paper the same ids, their runners on one
 * tasks folder. Real nats-server, runners, processes and folders.
 */
describe('runner (local): a task id that comes back runs again, in every project', () => {
  let nats: NatsServer;
  const buses: Bus[] = [];
  const dir = new TempDir('cp-task-id-again-');
  const logger = quietLogger('task-id-again-test');
  const ws = dir.join('ws');
  const running: RunningRunner[] = [];

  beforeAll(async () => {
    mkdirSync(ws);
    writeFileSync(
      dir.join('profile.json'),
      JSON.stringify({ resource_type: 'local', name: 'Lab', id: 'lab' }),
    );
    nats = await NatsServer.start();
  });
  afterAll(async () => {
    await Promise.allSettled(running.map((r) => r.stop()));
    await Promise.allSettled(buses.map((b) => b.close()));
    await nats?.[Symbol.asyncDispose]();
    dir[Symbol.dispose]();
  });

  /** A runner of `project`; every runner here has the same state folder, so one tasks folder. */
  async function start(project: string, parallel: number) {
    const bus = await Bus.connect({ servers: nats.url, service: 'runner', project, logger });
    buses.push(bus);
    const config: RunnerConfig = {
      project,
      resource: 'local',
      queue: 'local',
      runnerId: 'same-host-local',
      stateDir: dir.join('state'),
      parallel,
      intake: 16,
      workspaceRoots: [ws],
      profileFile: dir.join('profile.json'),
      jobKeep: { okMs: 600_000, failedMs: 7 * 86_400_000 },
      taskLogs: { pollMs: 20 },
    };
    const runner = await startRunner(bus, config);
    running.push(runner);
    const kv = await bus.kv(buckets.tasks(project), TaskRecord);
    const submit = (taskId: string, command: string) =>
      bus.publish('task.submitted', subjects.tasks(project, 'local'), {
        taskId,
        resource: 'local',
        command,
        cwd: ws,
      });
    /** The task's record once it ended after `since` (its history's first entry). */
    const ended = async (taskId: string, since = '') => {
      let rec: TaskRecord | undefined;
      await until(async () => {
        rec = (await kv.get(taskId))?.value;
        const first = rec?.history[0]?.time ?? '';
        return (rec?.state === 'finished' || rec?.state === 'failed') && first > since;
      }, `task ${taskId} of ${project} ended`);
      return defined(rec, `the record of ${taskId}`);
    };
    const stdout = (rec: TaskRecord) => readFileSync(defined(rec.stdoutPath, 'stdoutPath'), 'utf8');
    return { runner, kv, submit, ended, stdout };
  }

  it('runs a task again whose record went (expired or deleted) while its folder stayed, failed or finished, admitted at once or queued', async () => {
    const runs = dir.join('runs-again');
    // A runner forgets an ended task after 10 minutes (keepEndedMs), before its record expires
    // (15): each run of the id here is made by a runner that never knew the one before.
    const fresh = async () => {
      const old = running.pop();
      if (old) await old.stop();
      return start('again', 1);
    };
    for (const [id, firstExit] of [
      ['again-failed', 3],
      ['again-finished', 0],
    ] as const) {
      let r = await fresh();
      await r.submit(id, `echo first; echo ${id} >> ${runs}; exit ${firstExit}`);
      const first = await r.ended(id);
      expect([first.state, r.stdout(first)]).toEqual([
        firstExit ? 'failed' : 'finished',
        'first\n',
      ]);
      // The record goes (CP_RECORD_MAX_AGE_S, or deleted); the folder stays (keep times).
      await r.kv.delete(id);
      r = await fresh();
      await r.submit(id, `echo second; echo ${id} >> ${runs}`);
      const second = await r.ended(id, defined(first.history[0], 'history').time);
      expect([second.state, second.exitCode, r.stdout(second)]).toEqual([
        'finished',
        0,
        'second\n',
      ]);
      // Queued behind another task (one lane): started as the lane frees.
      await r.kv.delete(id);
      r = await fresh();
      await r.submit(`${id}-blocker`, 'sleep 0.3');
      await r.submit(id, `echo third; echo ${id} >> ${runs}; exit 5`);
      const third = await r.ended(id, defined(second.history[0], 'history').time);
      expect([third.state, third.exitCode, r.stdout(third)]).toEqual(['failed', 5, 'third\n']);
      expect(third.history.map((h) => h.state)).toEqual([
        'created',
        'submitted',
        'running',
        'failed',
      ]);
    }
    expect(readFileSync(runs, 'utf8')).toBe(
      'again-failed\nagain-failed\nagain-failed\nagain-finished\nagain-finished\nagain-finished\n',
    );
    const last = running.pop();
    if (last) await last.stop();
  });

  it('two projects on one tasks folder each run their own task of one id, at the same time and one after the other', async () => {
    const a = await start('pa', 2);
    const b = await start('pb', 2);
    // At once: each writes its project's name, slowly, so both run together.
    const cmd = (p: string) => `echo ${p}-start; sleep 0.4; echo ${p}-end`;
    await Promise.all([a.submit('same-1', cmd('pa')), b.submit('same-1', cmd('pb'))]);
    const [ra, rb] = await Promise.all([a.ended('same-1'), b.ended('same-1')]);
    expect([ra.state, a.stdout(ra)]).toEqual(['finished', 'pa-start\npa-end\n']);
    expect([rb.state, b.stdout(rb)]).toEqual(['finished', 'pb-start\npb-end\n']);
    // One after the other, the first failing: the second runs its own.
    await a.submit('same-2', 'echo pa; exit 4');
    const ea = await a.ended('same-2');
    await b.submit('same-2', 'echo pb');
    const eb = await b.ended('same-2');
    expect([ea.state, ea.exitCode, a.stdout(ea)]).toEqual(['failed', 4, 'pa\n']);
    expect([eb.state, eb.exitCode, b.stdout(eb)]).toEqual(['finished', 0, 'pb\n']);
  });
});
