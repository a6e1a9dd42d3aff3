import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { TaskRecord, TaskSubmitted } from '@computepods/protocol';
import { defined, TempDir, until } from '@computepods/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { readPidFile } from './pid-file.js';
import { crashRunner } from './test-crash-runner.js';
import { FileHooks } from './test-file-hooks.js';
import { testLocalResource } from './test-hooks.js';

const tmp = new TempDir('cp-local-crash-');
afterAll(() => tmp[Symbol.dispose]());

/**
 * Tasks of the local resource that append to their own file in `runs` before their body: exactly
 * one line at the end means a task ran exactly once.
 */
const counted =
  (runs: string) =>
  (id: string, body: string): TaskSubmitted => ({
    taskId: id,
    resource: 'local-resource',
    command: `echo run >> ${join(runs, id)}; ${body}`,
    cwd: tmp.path,
    env: {},
    gpu: false,
  });

describe('local tasks survive kill -9 of the runner', { timeout: 120000 }, () => {
  it('collects what ended meanwhile, follows what still runs, starts what never started, runs nothing twice', async () => {
    const records = tmp.join('records');
    const runs = tmp.join('runs');
    const gate = tmp.join('gate');
    mkdirSync(runs);
    const resource = testLocalResource(tmp.path, 4);
    const mk = counted(runs);
    const waitGate = `while [ ! -e ${gate} ]; do sleep 0.05; done`;
    // A plain command (a script's path, plain words): started by the spawner without a wrapper;
    // its exit file is the spawner's to write, which outlives the runner.
    const script = tmp.join('direct-task');
    writeFileSync(
      script,
      `#!/bin/sh\necho run >> "$1"\n${waitGate}\nsleep 2\necho late\nexit "$2"\n`,
    );
    chmodSync(script, 0o755);
    const tasks = [
      mk('done-before', 'exit 0'),
      mk('ends-ok', `${waitGate}; echo ok`),
      mk('ends-3', `${waitGate}; exit 3`),
      mk('still-running', `${waitGate}; sleep 2; echo late`),
      {
        ...mk('direct-running', ''),
        command: `${script} ${join(runs, 'direct-running')} 5`,
      },
      mk('queued', 'echo queued'),
    ];
    const env = {
      CRASH_RECORDS: records,
      CRASH_RESOURCE: JSON.stringify(resource),
      CRASH_TASKS: JSON.stringify(tasks),
      CRASH_READY:
        'done-before:finished,ends-ok:running,ends-3:running,still-running:running,direct-running:running,queued:submitted',
    };
    const first = crashRunner('runner', 'start', env);
    await first.waitForOutput('ready', 60_000);
    await first.kill9();

    // The runner is dead; its tasks are not. Let three of them end while nobody watches.
    writeFileSync(gate, '');
    const jobs = tmp.join('jobs');
    const end = performance.now() + 20_000;
    while (
      !(existsSync(join(jobs, 'ends-ok', 'exit')) && existsSync(join(jobs, 'ends-3', 'exit')))
    ) {
      if (performance.now() > end) throw new Error('tasks did not end while the runner was down');
      await sleep(20);
    }
    expect(existsSync(join(jobs, 'still-running', 'exit'))).toBe(false);
    expect(existsSync(join(jobs, 'direct-running', 'exit'))).toBe(false);
    // Its pid file comes from the spawner, once it has run for a moment (the runner is gone). The
    // file is created, then written: wait for its content, as the runner reads it (readPidFile).
    const direct = join(jobs, 'direct-running');
    await until(() => readPidFile(direct) !== undefined, 'the direct task pid file');
    expect(readFileSync(join(direct, 'pid'), 'utf8')).toMatch(/^\d+ \d+\n$/);
    expect(existsSync(join(runs, 'queued'))).toBe(false);

    const second = crashRunner('runner', 'recover', env);
    expect(await second.exited()).toBe(0);
    expect(second.output).toContain('done');

    const byId = new Map<string, TaskRecord>(
      new FileHooks(records).load().map((r) => [r.task.taskId, r]),
    );
    expect(Object.fromEntries([...byId].map(([id, r]) => [id, [r.state, r.exitCode]]))).toEqual({
      'done-before': ['finished', 0],
      'ends-ok': ['finished', 0],
      'ends-3': ['failed', 3],
      'still-running': ['finished', 0],
      'direct-running': ['failed', 5],
      queued: ['finished', 0],
    });
    for (const t of tasks) expect(readFileSync(join(runs, t.taskId), 'utf8')).toBe('run\n');
    expect(
      readFileSync(
        defined(
          defined(byId.get('still-running'), "byId.get('still-running')").stdoutPath,
          "byId.get('still-running').stdoutPath",
        ),
        'utf8',
      ),
    ).toBe('late\n');
    expect(defined(byId.get('ends-ok'), "byId.get('ends-ok')").history.map((h) => h.state)).toEqual(
      ['created', 'submitted', 'running', 'finished'],
    );
  });

  it('a task started before its running record, the runner killed -9 with that write held: followed after the restart, run once', async () => {
    const records = tmp.join('records-early');
    const runs = tmp.join('runs-early');
    const gate = tmp.join('gate-early');
    mkdirSync(runs);
    // One lane: `second` waits behind `first` and starts, as its lane frees, before its running
    // record (the starting runner's write of it never completes).
    const resource = testLocalResource(tmp.join('early'), 1);
    const mk = counted(runs);
    const tasks = [
      mk('first', 'exit 0'),
      mk('second', `while [ ! -e ${gate} ]; do sleep 0.05; done; echo ok`),
    ];
    const env = {
      CRASH_RECORDS: records,
      CRASH_RESOURCE: JSON.stringify(resource),
      CRASH_TASKS: JSON.stringify(tasks),
      CRASH_LIVENESS: '1',
      CRASH_HOLD_RUNNING: 'second',
      CRASH_READY: 'first:finished,second:submitted',
      CRASH_READY_FILE: join(runs, 'second'),
    };
    const first = crashRunner('runner', 'start', env);
    await first.waitForOutput('ready', 60_000);
    await first.kill9();
    expect(new FileHooks(records).load().find((r) => r.task.taskId === 'second')?.state).toBe(
      'submitted',
    );
    // It ends while nobody watches; its spawner writes its exit file.
    writeFileSync(gate, '');
    await until(
      () => existsSync(join(tmp.join('early'), 'jobs', 'second', 'exit')),
      'the task to end while the runner is down',
    );

    const second = crashRunner('runner', 'recover', env);
    expect(await second.exited()).toBe(0);
    const byId = new Map(new FileHooks(records).load().map((r) => [r.task.taskId, r]));
    const rec = defined(byId.get('second'), "byId.get('second')");
    expect([rec.state, rec.exitCode]).toEqual(['finished', 0]);
    expect(rec.history.map((h) => h.state)).toEqual([
      'created',
      'submitted',
      'running',
      'finished',
    ]);
    expect(readFileSync(defined(rec.stdoutPath, 'rec.stdoutPath'), 'utf8')).toBe('ok\n');
    for (const t of tasks) expect(readFileSync(join(runs, t.taskId), 'utf8')).toBe('run\n');
  });
});
