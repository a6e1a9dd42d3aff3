import { isRetryable } from '@computepods/protocol';
import { describe, expect, it } from 'vitest';
import { WorkerPoolError } from './errors.js';
import { WorkerPool } from './pool.js';

describe('WorkerPool', () => {
  it('rejects the tasks it holds with WorkerPoolError when destroyed', async () => {
    const pool = new WorkerPool(1);
    // One task on the worker, one queued: neither can be answered before destroy (no turn).
    // One task on the worker, one queued: neither can be answered before destroy (no turn).
    const held = [pool.hash(import.meta.filename), pool.hash(import.meta.filename)].map((task) =>
      task.then(
        () => undefined,
        (e: unknown) => e,
      ),
    );
    await pool.destroy();
    for (const err of await Promise.all(held)) {
      expect(err).toBeInstanceOf(WorkerPoolError);
      expect(err).toMatchObject({
        code: 'CP_FSWATCH_WORKER',
        message: 'fswatch worker pool: destroyed',
      });
      expect(isRetryable(err)).toBe(false);
    }
  });

  it('answers again after destroy, with a new worker', async () => {
    const pool = new WorkerPool(1);
    await pool.destroy();
    expect((await pool.hash(import.meta.filename)).kind).toBe('hashed');
    await pool.destroy();
  });
});
