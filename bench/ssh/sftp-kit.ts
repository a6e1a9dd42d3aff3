// What the SFTP bench's cases share: timing with the client side's CPU, sftp runs, cold pools,
// and the work directories on the one sshd.
import { spawnSync } from 'node:child_process';
import { chownSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Sshd, SshdUser } from '@computepods/testkit';
import { SshPool, type SshTarget } from '@computepods/transport';

export type Figures = Record<string, number | string | boolean>;

export const GiB = 1024 ** 3;

/** Timings per case; the best (shortest) is reported, ours and sftp alternating. */
export const REPEATS = Number(process.env.BENCH_SFTP_REPEATS ?? 2);

export const noop = () => undefined;

/** MB/s of `bytes` in `s` seconds. */
export const mb = (bytes: number, s: number) => bytes / 1e6 / s;

/** Writes back dirty pages so one case's writes do not slow the next one's. */
export function sync(): void {
  spawnSync('sync');
}

/** Linux's USER_HZ: the unit of /proc/<pid>/stat's CPU times. */
const CLOCK_TICKS = 100;

/**
 * CPU seconds (user + system) so far: this process's, all its threads; and its reaped
 * children's (an sftp run and the ssh it starts and waits for).
 */
function cpuSeconds(): { own: number; children: number } {
  const { user, system } = process.cpuUsage();
  const stat = readFileSync('/proc/self/stat', 'utf8');
  // Fields after the command's closing parenthesis: state is [0], cutime [13], cstime [14].
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { own: (user + system) / 1e6, children: (Number(f[13]) + Number(f[14])) / CLOCK_TICKS };
}

/** One timing: wall seconds, and the client side's CPU seconds in it (this process + children). */
export interface Timed {
  readonly s: number;
  readonly cpuS: number;
}

/** One timing of run, after prepare and a sync, checked afterwards, with its CPU. */
export async function timeWithCpu(
  prepare: () => void,
  check: () => void,
  run: () => Promise<unknown>,
): Promise<Timed> {
  prepare();
  sync();
  const c0 = cpuSeconds();
  const t0 = performance.now();
  await run();
  const s = (performance.now() - t0) / 1000;
  const c1 = cpuSeconds();
  check();
  return { s, cpuS: c1.own - c0.own + (c1.children - c0.children) };
}

/** One timing of run, after prepare and a sync, checked afterwards; in ms. */
export async function timeOnce(
  prepare: () => void,
  check: () => void,
  run: () => Promise<unknown>,
): Promise<number> {
  return (await timeWithCpu(prepare, check, run)).s * 1000;
}

/** The fastest timing's seconds, and the mean CPU seconds of all (CPU varies less than time). */
export function summary(runs: readonly Timed[]): Timed {
  return {
    s: Math.min(...runs.map((r) => r.s)),
    cpuS: runs.reduce((a, r) => a + r.cpuS, 0) / runs.length,
  };
}

/** The sshd, its first user, and the bench's directories: `remote` is written by that user. */
export class SftpKit {
  readonly target: SshTarget;
  readonly user: SshdUser;
  readonly local: string;
  readonly remote: string;
  readonly #sshOpts: string[];

  constructor(
    sshd: Sshd,
    readonly work: string,
  ) {
    this.target = sshd.target();
    this.user = sshd.users[0];
    this.local = join(work, 'local');
    this.remote = join(work, 'remote');
    mkdirSync(this.local);
    mkdirSync(this.remote);
    chownSync(this.remote, this.user.uid, this.user.gid);
    this.#sshOpts = [
      ...['-P', String(sshd.port), '-i', this.target.privateKeyPath],
      ...['-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes', '-o', 'StrictHostKeyChecking=yes'],
      ...['-o', `UserKnownHostsFile=${this.target.knownHostsPath}`, '-o', 'LogLevel=ERROR'],
    ];
  }

  /**
   * One OpenSSH `sftp -b` run (a new connection) of the batch commands; `cipher` (ssh's -c)
   * overrides its default choice.
   */
  async sftp(batch: string, cipher?: string): Promise<void> {
    const file = join(this.work, 'batch');
    writeFileSync(file, batch);
    const r = spawnSync(
      'sftp',
      [
        ...['-q', '-b', file, ...this.#sshOpts],
        ...(cipher ? ['-c', cipher] : []),
        `${this.user.username}@127.0.0.1`,
      ],
      { encoding: 'utf8' },
    );
    if (r.status !== 0) throw new Error(`sftp failed (${r.status}): ${r.stderr}`);
  }

  /** A new pool per timing: connect and auth are inside it, as for each sftp run. */
  async cold(fn: (pool: SshPool) => Promise<unknown>): Promise<void> {
    const pool = new SshPool({ minOpenIntervalMs: 0 });
    try {
      await fn(pool);
    } finally {
      await pool.close();
    }
  }

  /** A function removing the paths. */
  rmrf(...paths: string[]): () => void {
    return () => {
      for (const p of paths) rmSync(p, { recursive: true, force: true });
    };
  }

  /** Makes the directory, owned by the sshd user. */
  mine(p: string): void {
    mkdirSync(p, { recursive: true });
    chownSync(p, this.user.uid, this.user.gid);
  }
}
