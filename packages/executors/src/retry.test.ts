import { describe, expect, it } from 'vitest';
import { ResourceCommandError } from './errors.js';
import { backoffMs, withRetry } from './retry.js';

const policy = { attempts: 4, baseMs: 1, maxMs: 4 };

describe('withRetry', () => {
  it('backs off exponentially up to the cap', () => {
    expect(
      [1, 2, 3, 4, 5, 6].map((n) => backoffMs({ attempts: 9, baseMs: 100, maxMs: 500 }, n)),
    ).toEqual([0, 100, 200, 400, 500, 500]);
  });

  it('retries transient failures, then succeeds', async () => {
    const seen: number[] = [];
    const v = await withRetry(policy, async (n) => {
      seen.push(n);
      if (n < 3) throw new ResourceCommandError('squeue', 1, 'Socket timed out', true);
      return 'ok';
    });
    expect(v).toBe('ok');
    expect(seen).toEqual([1, 2, 3]);
  });

  it('throws a permanent failure at once', async () => {
    let calls = 0;
    await expect(
      withRetry(policy, async () => {
        calls++;
        throw new ResourceCommandError('sbatch', 1, 'invalid partition', false);
      }),
    ).rejects.toThrow(/invalid partition/);
    expect(calls).toBe(1);
  });

  it('gives up after the last try with the last error', async () => {
    let calls = 0;
    await expect(
      withRetry(policy, async () => {
        calls++;
        throw new ResourceCommandError('squeue', 1, `down ${calls}`, true);
      }),
    ).rejects.toThrow(/down 4/);
    expect(calls).toBe(4);
  });
});
