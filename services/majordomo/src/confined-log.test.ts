import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TempDir } from '@computepods/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { readConfinedLog } from './confined-log.js';

describe('task logs are read only inside the log roots', () => {
  const dir = new TempDir('cp-logs-');
  const root = dir.join('runner/tasks');
  mkdirSync(join(root, 't1'), { recursive: true });
  writeFileSync(join(root, 't1/stdout'), 'hello\n');
  writeFileSync(dir.join('secret'), 'TOKEN\n');
  symlinkSync(dir.join('secret'), join(root, 't1/stderr'));
  symlinkSync(dir.path, join(root, 'up'));
  afterAll(() => dir[Symbol.dispose]());

  it('reads a file in a job folder', async () => {
    expect(await readConfinedLog(join(root, 't1/stdout'), [root])).toBe('hello\n');
  });

  it.each([
    ['a file outside', () => dir.join('secret')],
    ['a relative path', () => 'secret'],
    ['a path climbing out', () => join(root, 't1/../../../secret')],
    ['a symlink out of the root', () => join(root, 't1/stderr')],
    ['a folder symlink out of the root', () => join(root, 'up/secret')],
    ['the root itself', () => root],
    ['a missing file outside', () => dir.join('nothing')],
  ])('refuses %s with 403 and no content', async (_what, path) => {
    const err = await readConfinedLog(path(), [root]).catch((e: unknown) => e);
    expect(err).toMatchObject({ status: 403, code: 'CP_LOG_OUTSIDE_ROOTS' });
    expect(String((err as Error).message)).not.toContain('TOKEN');
  });

  it('says 404 for a missing file inside a root', async () => {
    await expect(readConfinedLog(join(root, 't2/stdout'), [root])).rejects.toMatchObject({
      status: 404,
      code: 'CP_NO_LOG',
    });
  });
});
