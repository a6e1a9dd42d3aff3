import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { LivenessStack } from './liveness-stack.js';

/** The processes this test process started that still run (its children). */
function children(): string[] {
  try {
    return execFileSync('ps', ['-o', 'pid=,comm=', '--ppid', String(process.pid)], {
      encoding: 'utf8',
    })
      .split('\n')
      .map((l) => l.trim().split(/\s+/))
      .filter(([pid, comm]) => Number(pid) > 0 && comm !== 'ps') // not the ps listing them
      .map(([pid, comm]) => `${pid} ${comm}`);
  } catch {
    return []; // ps exits 1 when it lists nothing
  }
}

/**
 * A stack whose service fails to start is stopped whole. LivenessStack.start returned nothing
 * then, so the test file's afterAll had nothing to stop: its nats-server, MajorDomo, fswatcher
 * and chef ran on after the run (four such processes a file were found an hour later, from
 * runs whose MajorDomo could not start). Here runner-1 cannot start (a CP_PARALLEL that is no
 * number); real nats-server and services.
 */
describe('LivenessStack.start when a service fails to start', () => {
  it('stops every process it started and rejects with the failure', async () => {
    const before = children();
    const err = await LivenessStack.start('liveness-fail', { CP_PARALLEL: 'many' }).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(err?.message).toMatch(/runner-1/);
    expect(children().filter((child) => !before.includes(child))).toEqual([]);
  }, 120_000);
});
