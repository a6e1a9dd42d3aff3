import { describe, expect, it } from 'vitest';
import { RetryBackoff } from './retry-backoff.js';

describe('the delay before a build its chef cancelled is tried again', () => {
  it('doubles from 1 s up to 5 min, per task, and starts again after a reset', () => {
    const b = new RetryBackoff();
    const noop = () => undefined;
    const delays = Array.from({ length: 11 }, () => b.schedule('upper:nope', noop));
    expect(delays).toEqual([
      1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 64_000, 128_000, 256_000, 300_000, 300_000,
    ]);
    expect(b.schedule('upper:other', noop)).toBe(1_000);
    b.reset('upper:nope');
    expect(b.schedule('upper:nope', noop)).toBe(1_000);
    b.stop();
  });
});
