import { describe, expect, it } from 'vitest';
import { newApiToken, parseApiToken, sameSecret, secretMatches, sha256Hex } from './api-tokens.js';
import { ApiTokenRecord } from './projects.js';

describe('API tokens', () => {
  it('makes a valid record holding only the hash, and a token that parses back to it', () => {
    const { record, token } = newApiToken('alice', 'laptop');
    expect(ApiTokenRecord.parse(record)).toEqual(record);
    const parsed = parseApiToken(token);
    expect(parsed?.id).toBe(record.id);
    const secret = parsed?.secret ?? expect.unreachable('the token did not parse');
    expect(secret.length).toBeGreaterThanOrEqual(43);
    expect(JSON.stringify(record)).not.toContain(secret);
    expect(record.sha256).toBe(sha256Hex(secret));
    expect(secretMatches(secret, record.sha256)).toBe(true);
    expect(secretMatches(`${secret}x`, record.sha256)).toBe(false);
  });

  it('gives every token its own id and secret', () => {
    const a = newApiToken('alice');
    const b = newApiToken('alice');
    expect(a.record.id).not.toBe(b.record.id);
    expect(a.token).not.toBe(b.token);
  });

  it('refuses what is not a token of ours', () => {
    for (const t of ['', 'Bearer x', 'cpt_short_abc', 'cpt_ABCDEFGH_' + 'a'.repeat(43), 'xyz'])
      expect(parseApiToken(t)).toBeUndefined();
  });

  it('compares secrets of any length', () => {
    expect(sameSecret('abc', 'abc')).toBe(true);
    expect(sameSecret('abc', 'abcd')).toBe(false);
  });
});
