import { describe, expect, it } from 'vitest';

describe('passes', () => {
  it('adds', () => expect(1 + 1).toBe(2));
  it.skip('is skipped on purpose', () => {});
});
