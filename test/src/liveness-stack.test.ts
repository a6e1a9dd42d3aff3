import { describe, expect, it } from 'vitest';
import { children } from './children.js';
import { LivenessStack } from './liveness-stack.js';

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
