import type { TaskSubmitted } from '@computepods/protocol';
import { defined, TempDir } from '@computepods/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import type { BackendContext } from './backend.js';
import { Executor } from './executor.js';
import { LocalBackend } from './local-backend.js';
import { type Stage, type StageLine, TaskStages } from './task-stages.js';
import { RecordingHooks, testLocalResource } from './test-hooks.js';

const tmp = new TempDir('cp-exec-stages-');
afterAll(() => tmp[Symbol.dispose]());

function setup(parallel: number) {
  const lines: StageLine[] = [];
  const stages = new TaskStages((l) => lines.push(l));
  const ex = new Executor({
    resource: 'local-resource',
    backend: (ctx: BackendContext) =>
      new LocalBackend({ resource: testLocalResource(tmp.path, parallel), stages }, ctx),
    hooks: new RecordingHooks(),
    runner: 'test',
    stages,
  });
  return { ex, lines };
}

const task = (taskId: string, command: string): TaskSubmitted => ({
  taskId,
  resource: 'local-resource',
  command,
  cwd: tmp.path,
  env: {},
  gpu: false,
});

/** The order a task that waited for a lane passes its stages in (the spawner's on the same clock). */
const QUEUED: Stage[] = [
  'recorded',
  'lane',
  'running',
  'sent',
  'spawner-read',
  'spawned',
  'reaped',
  'exit',
  'lane-free',
  'end-prepared',
  'end-recorded',
];

describe('task stages (CP_TASK_STAGES_FILE)', () => {
  it("gives each task's stages in the order it passed them, the spawner's on the runner's clock, and its processes' CPU", async () => {
    const { ex, lines } = setup(1);
    // The first holds the one lane; the second waits for it, so it is recorded running apart.
    const burn = 'i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done';
    await ex.submit(task('first', burn));
    await ex.submit(task('second', 'true'));
    await ex.wait('second');
    await ex.close();
    expect(lines.map((l) => l.taskId).sort()).toEqual(['first', 'second']);
    const second = defined(lines.find((l) => l.taskId === 'second'));
    const marks = QUEUED.map((s) => [s, second[s]] as const);
    for (const [stage, at] of marks) expect(at, stage).toBeTypeOf('number');
    const times = marks.map(([, at]) => defined(at));
    expect(times).toEqual([...times].sort((a, b) => a - b));
    // The lane the first task held went to the second only once the first had ended.
    const first = defined(lines.find((l) => l.taskId === 'first'));
    expect(defined(second.lane)).toBeGreaterThanOrEqual(defined(first['lane-free']));
    // A free lane is taken before the first record: created, submitted and running in one write.
    expect(defined(first.lane)).toBeLessThanOrEqual(defined(first.recorded));
    expect(first.running).toBe(first.recorded);
    // The shell loop used CPU; the spawner measured it (rusage of the wrapper and its children).
    expect(defined(first.cpuMs)).toBeGreaterThan(0);
  });

  it('is off unless given: no stage lines, and the spawner is started without --times', async () => {
    const ex = new Executor({
      resource: 'local-resource',
      backend: (ctx: BackendContext) =>
        new LocalBackend({ resource: testLocalResource(tmp.path, 1) }, ctx),
      hooks: new RecordingHooks(),
      runner: 'test',
    });
    await ex.submit(task('plain', 'true'));
    const rec = await ex.wait('plain');
    expect(rec.state).toBe('finished');
    const pid = defined(ex.backend instanceof LocalBackend ? ex.backend.spawnerPids[0] : undefined);
    const { readFileSync } = await import('node:fs');
    const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    expect(args).not.toContain('--times');
    await ex.close();
  });
});
