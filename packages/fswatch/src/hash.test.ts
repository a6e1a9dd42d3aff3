import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { HashError, WatchLimitError } from './errors.js';
import { hashFile } from './hash.js';

const dir = mkdtempSync(join(tmpdir(), 'cp-hash-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

it('hashes files of any size in chunks, like sha256sum', async () => {
  for (const size of [0, 1, (1 << 20) - 1, 1 << 20, (3 << 20) + 17]) {
    const data = Buffer.alloc(size);
    for (let i = 0; i < size; i += 4096) data[i] = (i / 4096) & 0xff;
    const f = join(dir, `f${size}`);
    writeFileSync(f, data);
    expect(await hashFile(f, { bufferBytes: 64 << 10 })).toBe(
      createHash('sha256').update(data).digest('hex'),
    );
    expect(await hashFile(f)).toBe(createHash('sha256').update(data).digest('hex'));
  }
});

it('names the file and what to do when it cannot be hashed', async () => {
  const err = await hashFile(join(dir, 'nope')).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(HashError);
  expect((err as HashError).code).toBe('CP_FSWATCH_HASH');
  expect((err as HashError).message).toContain('nope');
});

it('says which sysctl to raise when inotify runs out', () => {
  const e = new WatchLimitError('src/deep', 'ENOSPC');
  expect(e.code).toBe('CP_FSWATCH_WATCH_LIMIT');
  expect(e.sysctl).toBe('fs.inotify.max_user_watches');
  expect(e.message).toContain('fs.inotify.max_user_watches');
  expect(new WatchLimitError('x', 'EMFILE').sysctl).toBe('fs.inotify.max_user_instances');
});
