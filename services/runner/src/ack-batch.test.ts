import { describe, expect, it } from 'vitest';
import { AckBatch } from './ack-batch.js';

describe('AckBatch', () => {
  it('wakes every caller of one turn together, and starts a new turn after', async () => {
    const acks = new AckBatch(5);
    const first = acks.turn();
    const second = acks.turn();
    expect(second).toBe(first);
    const order: string[] = [];
    const a = first.then(() => order.push('a'));
    const b = second.then(() => order.push('b'));
    // Settles in the turn's timer, before a later macrotask.
    await Promise.all([a, b]);
    expect(order).toEqual(['a', 'b']);
    const next = acks.turn();
    expect(next).not.toBe(first);
    await next;
  });
});
