import { describe, expect, it } from 'vitest';
import { PeriodicSweep } from './periodic-sweep.js';

const tick = (ms = 0) => new Promise((r) => setTimeout(r, ms));

describe('PeriodicSweep', () => {
  it('runs one sweep at a time: a run asked for during one joins it', async () => {
    let runs = 0;
    let release = () => {};
    const sweep = new PeriodicSweep({
      run: async () => {
        runs++;
        await new Promise<void>((r) => {
          release = r;
        });
      },
      everyMs: 60_000,
      onError: () => {},
    });
    const a = sweep.now();
    const b = sweep.now();
    expect(b).toBe(a);
    release();
    await a;
    expect(runs).toBe(1);
    const c = sweep.now();
    expect(c).not.toBe(a);
    release();
    await c;
    expect(runs).toBe(2);
  });

  it('hands a failed run to onError, never rejects, and keeps its schedule', async () => {
    const errors: unknown[] = [];
    let runs = 0;
    const sweep = new PeriodicSweep({
      run: async () => {
        runs++;
        throw new Error(`boom ${runs}`);
      },
      everyMs: 5,
      onError: (err) => errors.push(err),
    });
    sweep.start();
    while (runs < 3) await tick(5);
    await sweep.close();
    expect(errors.slice(0, 3).map(String)).toEqual([
      'Error: boom 1',
      'Error: boom 2',
      'Error: boom 3',
    ]);
  });

  it('close waits for the run in progress and starts none after it', async () => {
    let runs = 0;
    let ended = false;
    let release = () => {};
    const sweep = new PeriodicSweep({
      run: async () => {
        runs++;
        await new Promise<void>((r) => {
          release = r;
        });
        ended = true;
      },
      everyMs: 1,
      onError: () => {},
    });
    sweep.start();
    while (runs < 1) await tick();
    const closed = sweep.close();
    release();
    await closed;
    expect(ended).toBe(true);
    await tick(20);
    expect(runs).toBe(1);
    sweep.start();
    await tick(20);
    expect(runs).toBe(1);
  });
});
