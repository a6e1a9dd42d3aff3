import { createHash } from 'node:crypto';
import { renameSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { hashFile } from '@computepods/fswatch';
import { runCommand, TempDir } from '@computepods/testkit';
import { describe, expect, it } from 'vitest';
import { HashCache, statStamp } from './hash-cache.js';
import { SMALL_FILE_MAX } from './small-file.js';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('HashCache: a file read again unchanged costs a stat, never a wrong hash', () => {
  it('serves an unchanged file from its stamp, with its size and mtime', async () => {
    using tmp = new TempDir('cp-hash-cache-');
    const f = tmp.join('h.h');
    writeFileSync(f, 'int x;\n');
    await sleep(30); // past the racy window: the stamp is kept
    const cache = new HashCache();
    const first = await cache.digest(f);
    const st = statSync(f, { bigint: true });
    expect(first).toEqual({
      sha256: sha('int x;\n'),
      size: 7,
      mtimeNs: String(st.mtimeNs),
      stamp: statStamp(st),
    });
    expect(cache.size).toBe(1);
    expect(await cache.digest(f)).toEqual(first);
    expect(cache.hits).toBe(1);
  });

  it('hashes again after any write: same size, mtime set back, or another file renamed in', async () => {
    using tmp = new TempDir('cp-hash-cache-');
    const f = tmp.join('h.h');
    writeFileSync(f, 'int x;\n');
    const mtime = 1_700_000_000; // whole seconds: set back exactly
    utimesSync(f, mtime, mtime);
    await sleep(30);
    const cache = new HashCache();
    await cache.digest(f);
    // Same size, mtime put back as it was: only ctime tells (it cannot be set back).
    await sleep(30);
    const before = statStamp(statSync(f, { bigint: true }));
    writeFileSync(f, 'int y;\n');
    utimesSync(f, mtime, mtime);
    const after = await cache.digest(f);
    expect(after.sha256).toBe(sha('int y;\n'));
    // The stamp a build compares after its task ran tells the two apart too.
    expect(after.stamp).not.toBe(before);
    // Same bytes' size, renamed over it (a new inode).
    await sleep(30);
    writeFileSync(tmp.join('new'), 'int z;\n');
    utimesSync(tmp.join('new'), mtime, mtime);
    renameSync(tmp.join('new'), f);
    expect((await cache.digest(f)).sha256).toBe(sha('int z;\n'));
    expect(cache.hits).toBe(0);
  });

  it('keeps no stamp hashed within the racy window of its last change', async () => {
    using tmp = new TempDir('cp-hash-cache-');
    const f = tmp.join('o.o');
    writeFileSync(f, 'a');
    // A window of 1 h: the write above is certainly within it, however slow this machine is.
    const cache = new HashCache(3_600_000_000_000n);
    expect((await cache.digest(f)).sha256).toBe(sha('a'));
    expect(cache.size).toBe(0);
    expect((await cache.digest(f)).sha256).toBe(sha('a'));
    expect(cache.hits).toBe(0);
  });

  it('holds at most `max` stamps, dropping the oldest', async () => {
    using tmp = new TempDir('cp-hash-cache-');
    for (const n of ['a', 'b', 'c']) writeFileSync(tmp.join(n), n);
    await sleep(30);
    const cache = new HashCache(undefined, 2);
    for (const n of ['a', 'b', 'c']) await cache.digest(tmp.join(n));
    expect(cache.size).toBe(2);
    await cache.digest(tmp.join('a'));
    expect(cache.hits).toBe(0);
    await cache.digest(tmp.join('c'));
    expect(cache.hits).toBe(1);
  });

  it('hashes small files in its own thread and bigger ones in the workers alike, and keeps both', async () => {
    using tmp = new TempDir('cp-hash-cache-');
    const sizes = [
      0,
      1,
      SMALL_FILE_MAX - 1,
      SMALL_FILE_MAX,
      SMALL_FILE_MAX + 1,
      3 * SMALL_FILE_MAX,
    ];
    const files = sizes.map((n, i) => {
      const f = tmp.join(`f${i}`);
      writeFileSync(f, Buffer.alloc(n, i + 1));
      return f;
    });
    await sleep(30);
    const cache = new HashCache();
    for (const f of files) {
      const st = statSync(f, { bigint: true });
      const want = {
        sha256: await hashFile(f),
        size: Number(st.size),
        mtimeNs: String(st.mtimeNs),
        stamp: statStamp(st),
      };
      expect(await cache.digest(f)).toEqual(want);
      expect(await cache.digest(f)).toEqual(want);
    }
    expect(cache.size).toBe(files.length);
    expect(cache.hits).toBe(files.length);
  });

  it('never waits on a FIFO: it rejects, as hashing one does', async () => {
    using tmp = new TempDir('cp-hash-cache-');
    const fifo = tmp.join('pipe');
    expect((await runCommand('mkfifo', [fifo], { timeoutMs: 10_000 })).code).toBe(0);
    // No writer ever opens it: a blocking open or read would hang this test.
    await expect(new HashCache().digest(fifo)).rejects.toThrow();
  });

  it('rejects for a missing file, as hashing one does', async () => {
    using tmp = new TempDir('cp-hash-cache-');
    await expect(new HashCache().digest(tmp.join('none'))).rejects.toThrow(/ENOENT/);
  });
});
