import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { TempDir } from '@computepods/testkit';
import { describe, expect, it } from 'vitest';
import { confineLocal, projectPath } from './confine.js';

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

  it('keeps projectPath lexical: dependency records never name outside paths', () => {
    expect(projectPath('/w', '/w', '../etc/passwd')).toBeUndefined();
    expect(projectPath('/w', '/w/sub', 'a.h')).toBe('sub/a.h');
  });
});
