import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TaskRecord, TaskSubmitted } from '@computepods/protocol';
import { defined, TempDir, until } from '@computepods/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import type { LocalBackendOptions } from './local-backend.js';
import { localExecutor, type RecordingHooks, testLocalResource } from './test-hooks.js';

// A task's end (killed, timed out) is recorded before its processes are signalled, and a
// command may outlive its SIGTERM (a trap) until the SIGKILL after the grace period: the record
// says `stopping` until the runner has seen the whole process group gone, so a chef starts
// nothing else that writes the task's outputs meanwhile.
const tmp = new TempDir('cp-exec-stopping-');
afterAll(() => tmp[Symbol.dispose]());

function setup(options: Partial<LocalBackendOptions> = {}) {
  const { hooks, ex } = localExecutor({
    resource: testLocalResource(tmp.path, 2),
    killGraceMs: 5_000,
    ...options,
  });
  return { hooks, ex };
}

let n = 0;
/** A command that writes `begin`, and on SIGTERM, `end` after `trapS` seconds, then exits. */
function trapping(trapS: number, extra: Partial<TaskSubmitted> = {}) {
  n++;
  const ledger = tmp.join(`ledger-${n}`);
  const t: TaskSubmitted = {
    taskId: `s${n}-${process.pid}`,
    resource: 'local-resource',
    command: `trap 'sleep ${trapS}; echo end >> ${ledger}; exit 3' TERM; echo begin >> ${ledger}; while :; do sleep 0.05; done`,
    cwd: tmp.path,
    env: {},
    gpu: false,
    ...extra,
  };
  const lines = () => (existsSync(ledger) ? readFileSync(ledger, 'utf8') : '');
  return { t, lines, dir: join(tmp.join('jobs'), t.taskId) };
}

/** Live processes (not zombies) whose command line holds `marker` as one argument. */
function processesWith(marker: string): number[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((pid) => {
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
        if (/^[ZX]/.test(stat.slice(stat.lastIndexOf(')') + 2))) return false;
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes(marker);
      } catch {
        return false;
      }
    })
    .map(Number);
}

/** Resolves once the record `hooks` holds for `id` is no longer stopping; its ledger then. */
async function whenGone(hooks: RecordingHooks, id: string, lines: () => string) {
  let seen = '';
  await until(() => {
    const rec = hooks.records.get(id);
    if (!rec || rec.stopping) return false;
    seen = lines();
    return true;
  }, 'the record to say the task is gone');
  return seen;
}

describe('an ended task whose processes may still run is recorded stopping until they are gone', () => {
  it('killed: stopping while the command runs its TERM trap, off once the trap has ended', async () => {
    const { hooks, ex } = setup();
    const { t, lines, dir } = trapping(0.6);
    await ex.submit(t);
    await until(() => lines() === 'begin\n', 'the task to begin');
    const killed = await ex.kill(t.taskId);
    expect(killed).toMatchObject({ state: 'killed', stopping: true });
    // Taken off only after the trap wrote its end: nothing of the task runs any more.
    expect(await whenGone(hooks, t.taskId, lines)).toBe('begin\nend\n');
    expect(processesWith(dir)).toEqual([]);
    expect(ex.get(t.taskId)?.stopping).toBeUndefined();
    expect(hooks.records.get(t.taskId)?.state).toBe('killed');
  });

  it('settled() resolves once the killed task is gone, not at its killed record', async () => {
    const { ex } = setup();
    const { t, lines } = trapping(0.6);
    await ex.submit(t);
    await until(() => lines() === 'begin\n', 'the task to begin');
    const settled = ex.settled(t.taskId);
    await ex.kill(t.taskId);
    const rec = await settled;
    expect(lines()).toBe('begin\nend\n');
    expect(rec).toMatchObject({ state: 'killed' });
    expect(rec.stopping).toBeUndefined();
    expect(await ex.settled(t.taskId)).toBe(rec);
  });

  it('a command that ignores SIGTERM: stopping until the SIGKILL after the grace period', async () => {
    const { hooks, ex } = setup({ killGraceMs: 400 });
    n++;
    const marker = tmp.join(`ignoring-${n}`);
    const t: TaskSubmitted = {
      taskId: `s${n}-${process.pid}`,
      resource: 'local-resource',
      command: `trap '' TERM; touch ${marker}; while :; do sleep 0.05; done`,
      cwd: tmp.path,
      env: {},
      gpu: false,
    };
    const dir = join(tmp.join('jobs'), t.taskId);
    await ex.submit(t);
    await until(() => existsSync(marker), 'the task to begin');
    expect(await ex.kill(t.taskId)).toMatchObject({ state: 'killed', stopping: true });
    await whenGone(hooks, t.taskId, () => '');
    expect(processesWith(dir)).toEqual([]);
  });

  it('timed out: failed and stopping, off once the trap has ended', async () => {
    const { hooks, ex } = setup();
    const { t, lines } = trapping(0.6, { timeoutMs: 1_500 });
    await ex.submit(t);
    const ended = await ex.wait(t.taskId);
    expect(ended).toMatchObject({ state: 'failed', reason: 'timed out after 1500 ms' });
    expect(ended.stopping).toBe(true);
    expect(await whenGone(hooks, t.taskId, lines)).toBe('begin\nend\n');
  });

  it('a task killed before it ran anything is not stopping', async () => {
    const { hooks, ex } = setup({ resource: testLocalResource(tmp.path, 1) });
    const blocker = trapping(0);
    const queued = trapping(0);
    await ex.submit({ ...blocker.t, command: 'while :; do sleep 0.05; done' });
    await ex.submit(queued.t);
    await until(() => ex.get(queued.t.taskId)?.state === 'submitted', 'queued');
    expect((await ex.kill(queued.t.taskId)).stopping).toBeUndefined();
    // The blocker ran: stopping until it is gone. Waited for, or it outlived this test file (its
    // pid, reported after the spawner's pid hold, came after the worker had exited).
    expect((await ex.kill(blocker.t.taskId)).stopping).toBe(true);
    await whenGone(hooks, blocker.t.taskId, () => '');
    expect(processesWith(blocker.dir)).toEqual([]);
  });

  it('after a restart: a stopping record is watched again and taken off once the task is gone', async () => {
    const first = setup();
    const { t, lines } = trapping(1.5);
    await first.ex.submit(t);
    await until(() => lines() === 'begin\n', 'the task to begin');
    await first.ex.kill(t.taskId);
    // The runner goes before it saw the task gone (as after kill -9): its record stays stopping.
    await first.ex.close();
    const left = defined(first.hooks.records.get(t.taskId), 'the killed record') as TaskRecord;
    expect(left).toMatchObject({ state: 'killed', stopping: true });
    const second = setup();
    await second.ex.adopt([left]);
    expect(await whenGone(second.hooks, t.taskId, lines)).toBe('begin\nend\n');
    await second.ex.close();

    // Adopted when its processes are long gone: taken off at once.
    const third = setup();
    await third.ex.adopt([{ ...left, task: { ...left.task } }]);
    expect(await whenGone(third.hooks, t.taskId, lines)).toBe('begin\nend\n');
    expect(third.hooks.records.get(t.taskId)?.state).toBe('killed');
    await third.ex.close();
  });
});
