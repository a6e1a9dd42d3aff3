import { describe, expect, it } from 'vitest';

describe('fails', () => {
  it('passes first', () => expect(true).toBe(true));
  it('then fails', () => expect(1).toBe(2));
});
