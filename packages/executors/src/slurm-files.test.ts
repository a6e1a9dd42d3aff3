import {
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { TaskSubmitted } from '@computepods/protocol';
import { defined, TempDir } from '@computepods/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import {
  mergeTrees,
  outputTarget,
  readInput,
  TaskFileError,
  taskTree,
  workDirOf,
} from './slurm-files.js';

const tmp = new TempDir('cp-slurm-files-');
afterAll(() => tmp[Symbol.dispose]());

function workspace(name: string): string {
  const ws = tmp.join(name);
  mkdirSync(join(ws, 'src'), { recursive: true });
  writeFileSync(join(ws, 'src/a.txt'), 'a');
  return ws;
}

const task = (cwd: string, inputs: string[], outputs: string[]) =>
  TaskSubmitted.parse({
    taskId: 't',
    resource: 'hpc',
    command: 'true',
    cwd,
    files: { inputs, outputs },
  });

describe('the job folder tree of tasks with declared files', () => {
  it('copies inputs below <index>.work and makes the outputs folders there', async () => {
    const ws = workspace('plain');
    const tree = await taskTree(3, task(ws, ['src/a.txt'], ['out/deep/x', 'top']));
    expect(tree).toEqual({
      copies: [{ from: join(ws, 'src/a.txt'), to: '3.work/src/a.txt' }],
      dirs: ['3.work', '3.work/out/deep'],
    });
    expect(workDirOf('/jobs/k1', 3)).toBe('/jobs/k1/3.work');
    const other = await taskTree(4, task(ws, [], ['top']));
    expect(mergeTrees([tree, other]).dirs).toEqual(['3.work', '3.work/out/deep', '4.work']);
    const none = TaskSubmitted.parse({ taskId: 't', resource: 'hpc', command: 'true', cwd: ws });
    expect(await taskTree(0, none)).toEqual({ copies: [], dirs: [] });
  });

  it('refuses inputs that are missing, not files, or lead out of cwd through a symlink', async () => {
    const ws = workspace('hostile');
    writeFileSync(tmp.join('secret'), 's');
    symlinkSync(tmp.join('secret'), join(ws, 'src/link'));
    symlinkSync(tmp.path, join(ws, 'up'));
    const refused = async (inputs: string[]) => {
      const err = await taskTree(0, task(ws, inputs, ['o'])).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TaskFileError);
      return (err as Error).message;
    };
    expect(await refused(['src/none'])).toMatch(/^files\.inputs "src\/none": missing/);
    expect(await refused(['src'])).toMatch(/not a regular file/);
    expect(await refused(['src/link'])).toMatch(/a symlink leading outside/);
    expect(await refused(['up/secret'])).toMatch(/its folder leads outside .* through a symlink/);
  });

  it('places outputs in cwd, making their folder, never through a symlink out of cwd', async () => {
    const ws = workspace('outputs');
    expect(await outputTarget(ws, 'out/new/x.pdf')).toBe(join(ws, 'out/new/x.pdf'));
    expect(existsSync(join(ws, 'out/new'))).toBe(true);
    symlinkSync(tmp.path, join(ws, 'escape'));
    const err = await outputTarget(ws, 'escape/made/x').catch((e: unknown) => e);
    expect((err as Error).message).toMatch(
      /^files\.outputs "escape\/made\/x": its folder leads outside/,
    );
    expect(existsSync(tmp.join('made'))).toBe(false);
    await expect(outputTarget(ws, '../x')).rejects.toThrow(/leaves the project root/);
  });

  it('refuses an output whose place in cwd is a symlink, before the job and before the copy back', async () => {
    const ws = workspace('out-link');
    const keys = tmp.join('victim-ssh');
    mkdirSync(keys);
    writeFileSync(join(keys, 'authorized_keys'), 'ssh-ed25519 AAAA victim\n');
    symlinkSync(join(keys, 'authorized_keys'), join(ws, 'authorized_keys'));
    const err = await taskTree(0, task(ws, ['src/a.txt'], ['authorized_keys'])).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(TaskFileError);
    expect((err as Error).message).toMatch(
      /^files\.outputs "authorized_keys": is a symlink in .*; outputs never replace or follow one/,
    );
    await expect(outputTarget(ws, 'authorized_keys')).rejects.toThrow(/is a symlink/);
    mkdirSync(join(ws, 'out.d'));
    await expect(outputTarget(ws, 'out.d')).rejects.toThrow(/is not a regular file/);
    expect(readFileSync(join(keys, 'authorized_keys'), 'utf8')).toBe('ssh-ed25519 AAAA victim\n');
    expect(lstatSync(join(ws, 'authorized_keys')).isSymbolicLink()).toBe(true);
  });

  it('refuses declared paths with control characters; a name starting with "-" is fine', async () => {
    const ws = workspace('odd-names');
    writeFileSync(join(ws, '-rf'), 'dash');
    const tree = await taskTree(1, task(ws, ['-rf'], ['-n']));
    expect(tree.copies).toEqual([{ from: join(ws, '-rf'), to: '1.work/-rf' }]);
    for (const [inputs, outputs, field] of [
      [['src/a\nb'], ['o'], 'files.inputs'],
      [[], ['out/x\ty'], 'files.outputs'],
    ] as const) {
      const err = await taskTree(0, task(ws, [...inputs], [...outputs])).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TaskFileError);
      expect((err as Error).message).toMatch(
        new RegExp(`^${field.replace('.', '\\.')} .*control character`),
      );
    }
  });

  it('reads a staged input without following a symlink swapped in after the check', async () => {
    const ws = workspace('swap');
    const tree = await taskTree(0, task(ws, ['src/a.txt'], ['o']));
    const from = defined(tree.copies[0], 'tree.copies[0]').from;
    const read = async () => {
      const chunks: Buffer[] = [];
      for await (const c of readInput(from)) chunks.push(c as Buffer);
      return Buffer.concat(chunks).toString();
    };
    expect(await read()).toBe('a');
    writeFileSync(tmp.join('swap-secret'), 'secret');
    rmSync(from);
    symlinkSync(tmp.join('swap-secret'), from);
    await expect(read()).rejects.toThrow(/ELOOP/);
  });
});
