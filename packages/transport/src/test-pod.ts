import { randomBytes } from 'node:crypto';
import { Sshd, type SshdOptions, TempDir } from '@computepods/testkit';
import { afterAll, beforeAll } from 'vitest';
import { shellQuote } from './shell-quote.js';
import { SshPool } from './ssh-pool.js';
import type { SshTarget } from './target.js';

/** A test file's pod: a real sshd, a pool to it, a folder of its own there and a local one. */
export interface TestPod {
  readonly pool: SshPool;
  readonly target: SshTarget;
  /** The test file's folder on the pod, relative to its user's home. */
  readonly remote: string;
  readonly local: TempDir;
  /** Runs `cmd` on the pod; its stdout. */
  sh(cmd: string): Promise<string>;
}

/**
 * Starts a real sshd for the test file (beforeAll; `options` as Sshd.start takes them) with a
 * pool to it and a folder of its own on it named from `name`, and removes them all after
 * (afterAll), with a local temp dir.
 */
export function testPod(name: string, options?: SshdOptions): TestPod {
  let sshd: Sshd | undefined;
  let pool: SshPool | undefined;
  let target: SshTarget | undefined;
  const local = new TempDir(`cp-transport-${name}-`);
  const remote = `cp-${name}-test-${process.pid}-${randomBytes(3).toString('hex')}`;
  const started = <T>(v: T | undefined): T => {
    if (v === undefined) throw new Error('the test pod is used before its beforeAll ran');
    return v;
  };
  beforeAll(async () => {
    sshd = await Sshd.start(options);
    target = sshd.target();
    pool = new SshPool({ minOpenIntervalMs: 0 });
    await pool.exec(target, `mkdir -p ${shellQuote(remote)}`);
  });
  afterAll(async () => {
    if (pool && target) await pool.exec(target, `rm -rf -- ${shellQuote(remote)}`);
    await pool?.close();
    await sshd?.[Symbol.asyncDispose]();
    local[Symbol.dispose]();
  });
  return {
    get pool() {
      return started(pool);
    },
    get target() {
      return started(target);
    },
    remote,
    local,
    sh: async (cmd) => (await started(pool).exec(started(target), cmd)).stdout,
  };
}
