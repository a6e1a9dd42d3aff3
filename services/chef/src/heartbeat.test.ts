import type { Logger } from '@computepods/bus';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { startHeartbeat } from './heartbeat.js';

describe('startHeartbeat', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('keeps beating while an earlier put hangs, up to a bound', async () => {
    vi.useFakeTimers();
    const pending: Array<() => void> = [];
    let puts = 0;
    const stop = startHeartbeat(
      () => {
        puts++;
        return new Promise<void>((resolve) => pending.push(resolve));
      },
      500,
      { warn: () => undefined } as unknown as Logger,
    );
    // The first put hangs (NATS went away as it was sent): the next beats still go out.
    await vi.advanceTimersByTimeAsync(1_500);
    expect(puts).toBe(3);
    // No more than three at once.
    await vi.advanceTimersByTimeAsync(2_000);
    expect(puts).toBe(3);
    // One answered: the next beat goes out.
    pending.shift()?.();
    await vi.advanceTimersByTimeAsync(500);
    expect(puts).toBe(4);
    stop();
    await vi.advanceTimersByTimeAsync(2_000);
    expect(puts).toBe(4);
  });
});
