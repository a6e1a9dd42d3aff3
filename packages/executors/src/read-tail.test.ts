import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { TempDir } from '@computepods/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { readFrom } from './read-tail.js';

describe('readFrom: a local task log from an offset', () => {
  const dir = new TempDir('cp-read-tail-');
  afterAll(() => dir[Symbol.dispose]());

  it('reads from the offset, at most maxBytes, with the size; nothing new past the end', async () => {
    const f = dir.join('stdout');
    writeFileSync(f, 'hello world\n');
    expect(await readFrom(f, 6, 100)).toEqual({ data: Buffer.from('world\n'), size: 12 });
    expect(await readFrom(f, 0, 5)).toEqual({ data: Buffer.from('hello'), size: 12 });
    expect(await readFrom(f, 12, 100)).toEqual({ data: Buffer.alloc(0), size: 12 });
    // A file that started over is shorter than the offset: its size says so.
    writeFileSync(f, 'hi\n');
    expect(await readFrom(f, 12, 100)).toEqual({ data: Buffer.alloc(0), size: 3 });
    writeFileSync(dir.join('empty'), '');
    expect(await readFrom(dir.join('empty'), 0, 100)).toEqual({ data: Buffer.alloc(0), size: 0 });
  });

  it('is undefined for a missing file, a folder, or a FIFO (without hanging on it)', async () => {
    expect(await readFrom(dir.join('missing'), 0, 10)).toBeUndefined();
    mkdirSync(dir.join('folder'));
    expect(await readFrom(dir.join('folder'), 0, 10)).toBeUndefined();
    expect(spawnSync('mkfifo', [dir.join('fifo')]).status).toBe(0);
    expect(await readFrom(dir.join('fifo'), 0, 10)).toBeUndefined();
  });
});
