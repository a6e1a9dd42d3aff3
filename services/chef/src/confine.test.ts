import { mkdirSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { TempDir } from '@computepods/testkit';
import { describe, expect, it } from 'vitest';
import { Confinement, confineLocal, projectPath } from './confine.js';

describe('confineLocal: a workspace path stays inside the workspace on disk', () => {
  it('accepts plain files, paths still to be created, and symlinks that stay inside', async () => {
    using tmp = new TempDir('cp-confine-');
    const ws = tmp.join('ws');
    mkdirSync(`${ws}/src`, { recursive: true });
    writeFileSync(`${ws}/src/a.txt`, 'a');
    symlinkSync('src', `${ws}/alias`);
    expect(await confineLocal(ws, 'src/a.txt')).toBe(`${ws}/src/a.txt`);
    expect(await confineLocal(ws, 'out/new/x.o')).toBe(`${ws}/out/new/x.o`);
    expect(await confineLocal(ws, 'alias/a.txt')).toBe(`${ws}/alias/a.txt`);
    // The workspace itself may be reached through a symlink.
    symlinkSync(ws, tmp.join('ws-link'));
    expect(await confineLocal(tmp.join('ws-link'), 'alias/a.txt')).toBe(
      tmp.join('ws-link/alias/a.txt'),
    );
  });

  it('refuses a path through a directory symlink leading out, a file symlink, a dangling one', async () => {
    using tmp = new TempDir('cp-confine-');
    const ws = tmp.join('ws');
    const home = tmp.join('home');
    mkdirSync(ws);
    mkdirSync(home);
    writeFileSync(`${home}/secret`, 's');
    symlinkSync(home, `${ws}/out`);
    symlinkSync(`${home}/secret`, `${ws}/leak.txt`);
    symlinkSync(`${home}/not-yet`, `${ws}/dangling.o`);
    await expect(confineLocal(ws, 'out/x.o')).rejects.toThrow(
      /path "out\/x\.o" refused: out resolves to .*\/home, outside the workspace/,
    );
    await expect(confineLocal(ws, 'out/new/dir/x.o')).rejects.toThrow(/outside the workspace/);
    await expect(confineLocal(ws, 'leak.txt')).rejects.toThrow(
      expect.objectContaining({ code: 'CP_CHEF_UNSAFE_PATH' }),
    );
    await expect(confineLocal(ws, 'dangling.o')).rejects.toThrow(/symlink that leads nowhere/);
    await expect(confineLocal(ws, '../x')).rejects.toThrow(/not inside the workspace/);
  });

  it('answers as confineLocal does for many paths checked by one Confinement (folders resolved once)', async () => {
    using tmp = new TempDir('cp-confine-');
    const ws = tmp.join('ws');
    const home = tmp.join('home');
    mkdirSync(`${ws}/src/deep`, { recursive: true });
    mkdirSync(home);
    writeFileSync(`${ws}/src/a.txt`, 'a');
    writeFileSync(`${ws}/src/deep/b.txt`, 'b');
    writeFileSync(`${home}/secret`, 's');
    symlinkSync(home, `${ws}/out`);
    symlinkSync('src', `${ws}/alias`);
    symlinkSync(`${home}/secret`, `${ws}/src/leak.txt`);
    symlinkSync(`${home}/not-yet`, `${ws}/src/dangling.o`);
    symlinkSync(`${home}/gone`, `${ws}/nowhere`);
    // Accepted and refused paths side by side in the same folders, in an order where a folder's
    // real path is known before a symlink in it is met, and again after.
    const paths = [
      'src/a.txt',
      'src/leak.txt',
      'src/deep/b.txt',
      'alias/a.txt',
      'alias/leak.txt',
      'alias/deep/b.txt',
      'src/dangling.o',
      'src/new/x.o',
      'out/x.o',
      // A plain file in a folder that is a symlink leading out: its folder's real path counts.
      'out/secret',
      'out/new/dir/x.o',
      'nowhere/x.o',
      'src',
      'alias',
      'out',
      '../x',
    ];
    const one = new Confinement(ws);
    const settle = (p: Promise<string>) =>
      p.then(
        (full) => ({ full }),
        (err: Error) => ({ err: err.message }),
      );
    const shared = await Promise.all(paths.map((p) => settle(one.check(p))));
    const alone = await Promise.all(paths.map((p) => settle(confineLocal(ws, p))));
    expect(shared).toEqual(alone);
    const refused = paths.filter((_, i) => 'err' in (shared[i] as object));
    expect(refused).toEqual([
      'src/leak.txt',
      'alias/leak.txt',
      'src/dangling.o',
      'out/x.o',
      'out/secret',
      'out/new/dir/x.o',
      'nowhere/x.o',
      'out',
      '../x',
    ]);
    expect(shared[paths.indexOf('out/secret')]).toEqual({
      err: expect.stringMatching(/"out\/secret" refused: it resolves to .*\/home\/secret, outside/),
    });
    expect(shared[paths.indexOf('nowhere/x.o')]).toEqual({
      err: expect.stringMatching(/nowhere is a symlink that leads nowhere/),
    });
    // Asked again, the same answers (kept, not checked again).
    expect(await Promise.all(paths.map((p) => settle(one.check(p))))).toEqual(shared);
  });

  it('a new Confinement sees a symlink planted after an earlier one checked the path', async () => {
    using tmp = new TempDir('cp-confine-');
    const ws = tmp.join('ws');
    const home = tmp.join('home');
    mkdirSync(`${ws}/out`, { recursive: true });
    mkdirSync(home);
    writeFileSync(`${home}/secret`, 's');
    const before = new Confinement(ws);
    expect(await before.check('out/x.o')).toBe(`${ws}/out/x.o`);
    // The command ran: it made its output a symlink to a file outside, and replaced a folder.
    symlinkSync(`${home}/secret`, `${ws}/out/x.o`);
    renameSync(`${ws}/out`, `${ws}/was-out`);
    symlinkSync(home, `${ws}/out`);
    // The earlier one keeps its answer (a build's check before its run), a new one looks again.
    expect(await before.check('out/x.o')).toBe(`${ws}/out/x.o`);
    const after = new Confinement(ws);
    await expect(after.check('out/x.o')).rejects.toThrow(/out resolves to .*\/home, outside/);
    await expect(after.check('out/secret')).rejects.toThrow(/it resolves to .*\/home\/secret/);
    // The symlink planted in the folder went with it.
    await expect(after.check('was-out/x.o')).rejects.toThrow(
      /it resolves to .*\/home\/secret, outside/,
    );
  });

  it('keeps projectPath lexical: dependency records never name outside paths', () => {
    expect(projectPath('/w', '/w', '../etc/passwd')).toBeUndefined();
    expect(projectPath('/w', '/w/sub', 'a.h')).toBe('sub/a.h');
  });
});
