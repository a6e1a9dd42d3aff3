import { describe, expect, it } from 'vitest';
import { publishable } from './publishable.js';

const event = (path: string) => ({
  kind: 'changed' as const,
  path,
  size: 1,
  mtimeNs: '1',
  sha256: 'a'.repeat(64),
});

describe('what a files.changed batch may carry', () => {
  it('skips a path no message may name and keeps the rest of the batch', () => {
    const long = `${'a/'.repeat(2054)}x.txt`;
    const { ok, refused } = publishable([event('src/a.txt'), event(long), event('src/b.txt')]);
    expect(ok.map((e) => e.path)).toEqual(['src/a.txt', 'src/b.txt']);
    expect(refused).toHaveLength(1);
    expect(refused[0]?.reason).toMatch(/^path: .*longer than 1024 bytes/);
  });
});
