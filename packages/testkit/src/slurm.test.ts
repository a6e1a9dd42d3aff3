import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BinaryMissingError } from './errors.js';
import { ephemeralRange, tryReserve } from './reserved-port.js';
import { Slurm } from './slurm.js';
import { Sshd } from './sshd.js';
import { startTogether } from './start-together.js';

describe('Slurm', () => {
  let slurm: Slurm;
  let sshd: Sshd;
  beforeAll(async () => {
    [slurm, sshd] = await startTogether([Slurm.start(), Sshd.start({ users: ['cpuser'] })]);
  });
  afterAll(async () => {
    await sshd?.[Symbol.asyncDispose]();
    await slurm?.[Symbol.asyncDispose]();
  });

  it('shows its node idle in its own partition', async () => {
    const res = await slurm.command(['sinfo', '-h', '-o', '%P %T %N']);
    expect(res.stdout.trim()).toBe(`${slurm.partition}* idle ${slurm.nodeName}`);
    expect(slurm.env.SLURM_CONF).toBe(slurm.conf);
    expect(slurm.slurmctldPort).not.toBe(slurm.slurmdPort);
    // Reserved (a restarted daemon gets its port back), outside the kernel's ephemeral range.
    const [lo, hi] = ephemeralRange();
    for (const port of [slurm.slurmctldPort, slurm.slurmdPort]) {
      expect(port < lo || port > hi).toBe(true);
      expect(tryReserve(port)).toBeUndefined();
    }
  });

  it('runs a job submitted by root', async () => {
    const out = join(slurm.workDir, 'root-%j.out');
    const sub = await slurm.command(['sbatch', '--parsable', '-o', out, '--wrap', 'echo hi']);
    expect(sub.code, sub.stderr).toBe(0);
    const id = sub.stdout.trim();
    const job = await slurm.waitForJob(id);
    expect(job.JobState).toBe('COMPLETED');
    expect(job.UserId).toMatch(/^root\(0\)/);
    expect(readFileSync(out.replace('%j', id), 'utf8')).toBe('hi\n');
  });

  it('runs a job submitted as cpuser through sudo', async () => {
    const sub = await slurm.command(['sbatch', '--parsable', '--wrap', 'echo hi; id -un'], {
      user: 'cpuser',
    });
    expect(sub.code, sub.stderr).toBe(0);
    const id = sub.stdout.trim();
    const job = await slurm.waitForJob(id);
    expect(job.JobState).toBe('COMPLETED');
    expect(job.UserId).toMatch(/^cpuser\(/);
    expect(readFileSync(join(slurm.workDir, `slurm-${id}.out`), 'utf8')).toBe('hi\ncpuser\n');
  });

  it('runs a job submitted over SSH as cpuser', async () => {
    const sub = await sshd.ssh(
      `cd ${slurm.workDir} && SLURM_CONF=${slurm.conf} sbatch --parsable --wrap 'echo hi'`,
    );
    expect(sub.code, sub.stderr).toBe(0);
    const id = sub.stdout.trim();
    const job = await slurm.waitForJob(id);
    expect(job.JobState).toBe('COMPLETED');
    expect(job.UserId).toMatch(/^cpuser\(/);
  });

  it('runs small jobs side by side (DefMemPerCPU keeps them from taking the node)', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 2; i++) {
      const sub = await slurm.command([
        'sbatch',
        '--parsable',
        '-o',
        '/dev/null',
        '--wrap',
        'sleep 30',
      ]);
      ids.push(sub.stdout.trim());
    }
    const deadline = performance.now() + 30_000;
    let states: string[] = [];
    while (performance.now() < deadline) {
      states = await Promise.all(ids.map(async (id) => (await slurm.showJob(id)).JobState ?? ''));
      if (states.every((s) => s === 'RUNNING')) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(states).toEqual(['RUNNING', 'RUNNING']);
    await slurm.command(['scancel', ...ids]);
  });

  it('says clearly when a daemon is missing', async () => {
    const saved = process.env.SLURMCTLD_BIN;
    process.env.SLURMCTLD_BIN = '/nonexistent/slurmctld';
    try {
      const err = await Slurm.start().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(BinaryMissingError);
      expect(String(err)).toMatch(/scripts\/setup/);
    } finally {
      if (saved === undefined) delete process.env.SLURMCTLD_BIN;
      else process.env.SLURMCTLD_BIN = saved;
    }
  });
});
