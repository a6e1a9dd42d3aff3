import { describe, expect, it } from 'vitest';
import { LoopLiveness } from './liveness.js';

describe('LoopLiveness', () => {
  it('keeps its epoch while the loop ticks on time, and moves it on a stall, a drop or close', () => {
    let now = 0;
    const l = new LoopLiveness({ stallMs: 1_000, tickMs: 60_000, now: () => now });
    try {
      const e0 = l.epoch();
      now += 900;
      expect(l.epoch()).toBe(e0);
      now += 900; // read 900 ms after the last one: a look at the epoch is a tick too
      expect(l.epoch()).toBe(e0);
      // Thawed after a stop, no timer run since: the read itself sees the silence.
      now += 1_000;
      const e1 = l.epoch();
      expect(e1).not.toBe(e0);
      expect(l.epoch()).toBe(e1);
      l.dropped();
      const e2 = l.epoch();
      expect(e2).not.toBe(e1);
      l.close();
      expect(l.epoch()).not.toBe(l.epoch());
    } finally {
      l.close();
    }
  });

  it('sees a stall of the event loop by its timer coming late', async () => {
    const l = new LoopLiveness({ stallMs: 100, tickMs: 10 });
    try {
      const e0 = l.epoch();
      const until = performance.now() + 150;
      while (performance.now() < until) {} // the loop blocked 150 ms
      await new Promise((r) => setTimeout(r, 30)); // the timer runs first, late
      expect(l.epoch()).not.toBe(e0);
    } finally {
      l.close();
    }
  });
});
