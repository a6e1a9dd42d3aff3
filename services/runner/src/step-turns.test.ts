import { quietLogger } from '@computepods/bus';
import { type TaskRecord, TaskSubmitted } from '@computepods/protocol';
import { describe, expect, it } from 'vitest';
import { type StepTasks, StepTurns } from './step-turns.js';

/**
 * The executor as StepTurns sees it: a taken task runs until the test ends it; a kill is only
 * noted, so that the test decides when the killed task has stopped (a command may outlive its
 * SIGTERM, and the next task must wait for that).
 */
class FakeTasks implements StepTasks {
  readonly kills: { taskId: string; reason: string }[] = [];
  readonly #records = new Map<string, TaskRecord>();
  readonly #waiters = new Map<string, (() => void)[]>();

  /** The task as the executor has it once taken: running. */
  run(task: TaskSubmitted, time = new Date().toISOString()): TaskRecord {
    const rec: TaskRecord = {
      task,
      state: 'running',
      history: [{ state: 'running', time }],
      updated: time,
    };
    this.#records.set(task.taskId, rec);
    return rec;
  }

  /** The task has ended and nothing of it runs any more. */
  end(taskId: string): void {
    const rec = this.#records.get(taskId);
    if (rec) rec.state = 'killed';
    for (const wake of this.#waiters.get(taskId) ?? []) wake();
    this.#waiters.delete(taskId);
  }

  isSettled(taskId: string): boolean {
    return this.#records.get(taskId)?.state === 'killed';
  }

  get(taskId: string): TaskRecord | undefined {
    return this.#records.get(taskId);
  }

  async kill(taskId: string, reason: string): Promise<TaskRecord> {
    this.kills.push({ taskId, reason });
    return this.#require(taskId);
  }

  settled(taskId: string): Promise<TaskRecord> {
    const rec = this.#require(taskId);
    if (rec.state === 'killed') return Promise.resolve(rec);
    return new Promise((resolve) => {
      const waiters = this.#waiters.get(taskId) ?? [];
      waiters.push(() => resolve(rec));
      this.#waiters.set(taskId, waiters);
    });
  }

  #require(taskId: string): TaskRecord {
    const rec = this.#records.get(taskId);
    if (!rec) throw new Error(`no task ${taskId}`);
    return rec;
  }
}

function task(taskId: string, ...steps: [string, ...string[]]): TaskSubmitted {
  const [id, ...also] = steps;
  return TaskSubmitted.parse({
    taskId,
    resource: 'local',
    command: 'true',
    cwd: '/tmp',
    step: { id, pass: 1, chef: 'chef-1', ...(also.length ? { also } : {}) },
  });
}

/** Takes the task as runner.ts does: its submission makes it the executor's, running. */
function take(turns: StepTurns, tasks: FakeTasks, t: TaskSubmitted): Promise<TaskRecord> {
  return turns.take(t, async () => tasks.run(t));
}

/** `p`, or a failure naming `what` once `ms` have passed: a deadlock fails fast and says so. */
async function within<T>(p: Promise<T>, what: string, ms = 2_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Lets every pending promise callback run (the turns chain through several). */
async function drain(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
}

describe('StepTurns with group tasks (step.also)', () => {
  const log = quietLogger('step-turns-test');

  it('a group task kills the running single task of one of its steps, and runs once it stopped', async () => {
    const tasks = new FakeTasks();
    const turns = new StepTurns(tasks, log);
    await take(turns, tasks, task('t-b', 'b'));
    let taken = false;
    const group = turns.take(task('t-abc', 'a', 'b', 'c'), async () => {
      // The older task must have stopped by the time the group's is handed over.
      taken = true;
      expect(tasks.isSettled('t-b')).toBe(true);
      return tasks.run(task('t-abc', 'a', 'b', 'c'));
    });
    await drain();
    expect(tasks.kills).toEqual([
      { taskId: 't-b', reason: expect.stringMatching(/superseded by task t-abc .*step b\)/) },
    ]);
    expect(taken).toBe(false);
    tasks.end('t-b');
    await group;
    expect(taken).toBe(true);
  });

  it('a group task kills the earlier task of each of its steps, and runs once both stopped', async () => {
    const tasks = new FakeTasks();
    const turns = new StepTurns(tasks, log);
    await take(turns, tasks, task('t-a', 'a'));
    await take(turns, tasks, task('t-b', 'b'));
    const group = take(turns, tasks, task('t-ab', 'a', 'b'));
    await drain();
    expect(tasks.kills.map((k) => k.taskId).sort()).toEqual(['t-a', 't-b']);
    tasks.end('t-a');
    await drain();
    expect(tasks.get('t-ab')).toBeUndefined();
    tasks.end('t-b');
    await group;
    expect(tasks.get('t-ab')?.state).toBe('running');
  });

  it('a later single task of a step of a running group task supersedes the group', async () => {
    const tasks = new FakeTasks();
    const turns = new StepTurns(tasks, log);
    await take(turns, tasks, task('t-abc', 'a', 'b', 'c'));
    const single = take(turns, tasks, task('t-c', 'c'));
    await drain();
    expect(tasks.kills).toEqual([
      { taskId: 't-abc', reason: expect.stringMatching(/superseded by task t-c .*step c\)/) },
    ]);
    tasks.end('t-abc');
    await single;
    expect(tasks.get('t-c')?.state).toBe('running');
  });

  it('two group tasks sharing two steps, named in either order, taken at once: the second kills the first once', async () => {
    const tasks = new FakeTasks();
    const turns = new StepTurns(tasks, log);
    const first = take(turns, tasks, task('t-xy', 'x', 'y'));
    const second = take(turns, tasks, task('t-yx', 'y', 'x'));
    await within(first, 'the first group task taken');
    await drain();
    expect(tasks.kills).toEqual([
      { taskId: 't-xy', reason: expect.stringMatching(/superseded by task t-yx .*step x\)/) },
    ]);
    tasks.end('t-xy');
    await within(second, 'the second group task taken');
    expect(tasks.get('t-yx')?.state).toBe('running');
  });

  it("after a restart, an adopted group task is superseded by a later task of its 'also' step", async () => {
    const tasks = new FakeTasks();
    const turns = new StepTurns(tasks, log);
    turns.adopt([tasks.run(task('t-pq', 'p', 'q'), '2024-01-01T00:00:00.000Z')]);
    const later = take(turns, tasks, task('t-q', 'q'));
    await drain();
    expect(tasks.kills).toEqual([
      { taskId: 't-pq', reason: expect.stringMatching(/superseded by task t-q .*step q\)/) },
    ]);
    tasks.end('t-pq');
    await later;
  });

  it('a task of a step whose group task has settled kills nothing', async () => {
    const tasks = new FakeTasks();
    const turns = new StepTurns(tasks, log);
    await take(turns, tasks, task('t-ab', 'a', 'b'));
    tasks.end('t-ab');
    await drain();
    await take(turns, tasks, task('t-b2', 'b'));
    expect(tasks.kills).toEqual([]);
  });
});
