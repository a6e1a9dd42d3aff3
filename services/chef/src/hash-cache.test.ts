import { createHash } from 'node:crypto';
import { renameSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { TempDir } from '@computepods/testkit';
import { describe, expect, it } from 'vitest';
import { HashCache, statStamp } from './hash-cache.js';

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

  it('rejects for a missing file, as hashing one does', async () => {
    using tmp = new TempDir('cp-hash-cache-');
    await expect(new HashCache().digest(tmp.join('none'))).rejects.toThrow(/ENOENT/);
  });
});
