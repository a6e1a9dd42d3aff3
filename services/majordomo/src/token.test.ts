import { readFileSync, statSync } from 'node:fs';
import { defined, TempDir } from '@computepods/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { apiToken } from './token.js';

describe('the bootstrap API token', () => {
  const dir = new TempDir('cp-token-');
  afterAll(() => dir[Symbol.dispose]());

  it('is CP_API_TOKEN when given, and refused when short', () => {
    expect(apiToken('a-long-enough-token-0123', dir.path)).toEqual({
      token: 'a-long-enough-token-0123',
    });
    expect(() => apiToken('short', dir.path)).toThrow(/CP_API_TOKEN is 5 characters/);
  });

  it('is generated once into a 0600 file and read back after a restart', () => {
    const first = apiToken(undefined, dir.join('md'));
    expect(first.token.length).toBeGreaterThanOrEqual(43);
    expect(first.file).toBe(dir.join('md', 'api-token'));
    expect(statSync(defined(first.file, 'the file')).mode & 0o777).toBe(0o600);
    expect(readFileSync(defined(first.file, 'the file'), 'utf8').trim()).toBe(first.token);
    expect(apiToken(undefined, dir.join('md'))).toEqual(first);
  });
});
