import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { TempDir } from '@computepods/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { readSmallFile, SMALL_READ_MAX } from './small-read.js';

describe('readSmallFile', () => {
  const dir = new TempDir('cp-small-read-');
  afterAll(() => dir[Symbol.dispose]());

  it('reads a small regular file whole, an empty one as empty', () => {
    const data = randomBytes(SMALL_READ_MAX);
    writeFileSync(dir.join('max'), data);
    writeFileSync(dir.join('empty'), '');
    expect(readSmallFile(dir.join('max'))?.equals(data)).toBe(true);
    expect(readSmallFile(dir.join('empty'))).toEqual(Buffer.alloc(0));
  });

  it('leaves a bigger file, and a FIFO, to the caller without reading or blocking', () => {
    writeFileSync(dir.join('big'), randomBytes(SMALL_READ_MAX + 1));
    expect(readSmallFile(dir.join('big'))).toBeUndefined();
    expect(spawnSync('mkfifo', [dir.join('fifo')]).status).toBe(0);
    expect(readSmallFile(dir.join('fifo'))).toBeUndefined();
  });

  it('a file that reads longer than its stat says is changed-while-read', () => {
    // /proc files stat as empty and read as text.
    expect(() => readSmallFile('/proc/self/status')).toThrow(
      expect.objectContaining({ code: 'TRANSPORT_CHANGED_WHILE_READ', retryable: true }),
    );
  });

  it('a missing file throws the system error', () => {
    expect(() => readSmallFile(dir.join('nope'))).toThrow(
      expect.objectContaining({ code: 'ENOENT' }),
    );
  });
});
