import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { defined, TempDir } from '@computepods/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { LogReads } from './log-reads.js';
import type { HostResult } from './slurm-host.js';

describe('LogReads: task output read in one command', () => {
  const dir = new TempDir('cp-log-reads-');
  afterAll(() => dir[Symbol.dispose]());
  const commands: string[][] = [];
  // The same command a host runs as the cluster's user, run here as ourselves.
  const run = async (argv: readonly string[]): Promise<HostResult> => {
    commands.push([...argv]);
    const r = spawnSync(defined(argv[0], 'argv[0]'), argv.slice(1), { encoding: 'utf8' });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };

  it('reads many files from their offsets, any byte, and says which are not there', async () => {
    const reads = new LogReads(run);
    const bin = Buffer.from([0, 255, 10, 13, 0xe2, 0x82]);
    writeFileSync(join(dir.path, 'a.out'), 'hello world\n');
    writeFileSync(join(dir.path, 'b.out'), bin);
    writeFileSync(join(dir.path, 'odd name; $(x).err'), '');
    mkdirSync(join(dir.path, 'folder.out'));
    const got = await Promise.all([
      reads.read(join(dir.path, 'a.out'), 6, 100),
      reads.read(join(dir.path, 'a.out'), 0, 5),
      reads.read(join(dir.path, 'b.out'), 1, 4),
      reads.read(join(dir.path, 'odd name; $(x).err'), 0, 10),
      reads.read(join(dir.path, 'missing.out'), 0, 10),
      reads.read(join(dir.path, 'folder.out'), 0, 10),
      reads.read(join(dir.path, 'a.out'), 50, 10),
    ]);
    expect(commands).toHaveLength(1);
    expect(got).toEqual([
      { size: 12, data: Buffer.from('world\n') },
      { size: 12, data: Buffer.from('hello') },
      { size: 6, data: bin.subarray(1, 5) },
      { size: 0, data: Buffer.alloc(0) },
      undefined,
      undefined,
      { size: 12, data: Buffer.alloc(0) },
    ]);
  });

  it('fails every read of a command that failed, for the caller to try again', async () => {
    const reads = new LogReads(async () => ({
      code: 255,
      stdout: '',
      stderr: 'ssh: connection lost',
    }));
    await expect(reads.read(join(dir.path, 'a.out'), 0, 10)).rejects.toThrow(/connection lost/);
  });
});
