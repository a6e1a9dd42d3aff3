import { beforeAll, describe, expect, it } from 'vitest';

describe('set-up fails', () => {
  beforeAll(() => {
    throw new Error('fixture: the server did not start');
  });
  it('never runs', () => expect(true).toBe(true));
  it('never runs either', () => expect(true).toBe(true));
});
