import { MessageInvalidError } from '@computepods/bus';
import { describe, expect, it } from 'vitest';
import { checkResult } from './result-out.js';

const base = { buildId: 'b1', taskId: 't1', chef: 'c', pod: 'p', durationMs: 3 };

describe('checkResult', () => {
  it('fills the defaults the put and the message both carry', () => {
    expect(checkResult({ ...base, status: 'failed', error: 'no' })).toEqual({
      ...base,
      status: 'failed',
      error: 'no',
      outputs: {},
      cutoff: {},
      discovered: [],
      projections: {},
      inputProjections: {},
      inputsNow: {},
    });
  });

  it('refuses an invalid result, naming the field', () => {
    const bad = { ...base, status: 'succeeded' as const, outputs: { '../x.o': { sha256: 'z' } } };
    let err: unknown;
    try {
      checkResult(bad as never);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(MessageInvalidError);
    expect((err as MessageInvalidError).message).toMatch(/build\.result/);
    expect(JSON.stringify((err as MessageInvalidError).issues)).toMatch(/body\.outputs/);
  });
});
