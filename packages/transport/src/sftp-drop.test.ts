import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { defined, processesUsing, Sshd, TempDir, until as waitUntil } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { downloadFile, uploadFile } from './file-transfer.js';
import { SshPool } from './ssh-pool.js';
import type { SshTarget } from './target.js';

// The SSH connection drops in the middle of a large SFTP transfer: the session is killed on
// the server side, or the whole sshd goes away and comes back on the same port. The
// destination never shows a partial file (temp name, then rename), and the transfer is
// started over and completes with the right SHA-256. The transfer is caught mid-way without
// racing it: once its temp file has grown, the server's sftp-server is frozen (SIGSTOP), then
// the connection is cut.
describe('SFTP transfers when the connection drops mid-file', { timeout: 120_000 }, () => {
  let sshd: Sshd;
  let target: SshTarget;
  const dir = new TempDir('cp-sftp-drop-');
  const big = dir.join('big.bin');
  const SIZE = 48 * 1024 * 1024;
  let want = '';

  beforeAll(async () => {
    chmodSync(dir.path, 0o1777);
    const data = randomBytes(SIZE);
    writeFileSync(big, data);
    chmodSync(big, 0o644);
    want = createHash('sha256').update(data).digest('hex');
    sshd = await Sshd.start();
    target = sshd.target();
  }, 60_000);
  afterAll(async () => {
    await sshd?.[Symbol.asyncDispose]();
    dir[Symbol.dispose]();
  });

  const until = (cond: () => boolean | Promise<boolean>, what: string, diag?: () => string) =>
    waitUntil(cond, what, 60_000, diag);
  const sha = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');
  const temps = (folder: string, name: string) =>
    readdirSync(folder).filter((n) => n.startsWith(`.${name}.tmp-`));

  /** Watches `path` until stopped; records every time it was seen with a size other than `size`. */
  function watchDestination(path: string, size: number) {
    const partial: number[] = [];
    let seen = false;
    const timer = setInterval(() => {
      try {
        const st = statSync(path);
        seen = true;
        if (st.size !== size) partial.push(st.size);
      } catch {
        // not there yet
      }
    }, 5);
    return {
      partial,
      seen: () => seen,
      stop: () => clearInterval(timer),
    };
  }

  /**
   * Waits until the transfer's temp file beside `name` in `folder` appears, freezes the
   * server's SFTP session holding a file open in `frozenIn` (SIGSTOP), and checks the
   * transfer was caught mid-file. Returns the temp file's path and the frozen pids.
   */
  async function catchMidFile(
    folder: string,
    name: string,
    frozenIn: string,
  ): Promise<{ temp: string; frozen: number[] }> {
    let temp = '';
    let frozen: number[] = [];
    await until(() => {
      const t = temps(folder, name)[0];
      if (!t) return false;
      frozen = freezeServerOf(frozenIn);
      if (frozen.length === 0) return false;
      temp = join(folder, t);
      return true;
    }, `the transfer of ${name} under way`);
    const size = statSync(temp).size;
    expect(size, 'the transfer was caught before its end').toBeLessThan(SIZE);
    return { temp, frozen };
  }

  /**
   * Freezes the server's side of the transfer holding a file open in `folder`: sshd's
   * internal-sftp, or the `cat` a streamed upload writes through; returns its pids.
   */
  function freezeServerOf(folder: string): number[] {
    const pids = processesUsing(folder).filter((pid) => {
      try {
        return /sshd|sftp|^cat\0/.test(readFileSync(`/proc/${pid}/cmdline`, 'utf8'));
      } catch {
        return false;
      }
    });
    for (const pid of pids) process.kill(pid, 'SIGSTOP');
    return pids;
  }

  it('upload: the session killed on the server mid-file, the transfer starts over under a new temp name and completes verified', async () => {
    const remoteDir = dir.join('up-kill');
    const remote = join(remoteDir, 'big.bin');
    await using pool = new SshPool({ maxConnectionsPerHost: 1, minOpenIntervalMs: 0 });
    await pool.exec(target, ['mkdir', '-p', remoteDir]);
    const watch = watchDestination(remote, SIZE);
    const upload = uploadFile(pool, target, big, remote);
    const { temp: firstTemp, frozen } = await catchMidFile(remoteDir, 'big.bin', remoteDir);
    expect(existsSync(remote)).toBe(false);
    await sshd.killSession(defined(frozen[0], 'a frozen sftp-server'));

    const report = await upload;
    watch.stop();
    expect(report).toMatchObject({ bytes: SIZE, sha256: want, replaced: false });
    expect(sha(remote)).toBe(want);
    expect(watch.partial).toEqual([]);
    // the cut-off temp file was removed, and no other is left
    expect(existsSync(firstTemp)).toBe(false);
    expect(temps(remoteDir, 'big.bin')).toEqual([]);
    expect(pool.stats()).toMatchObject({ connectionsOpened: 2 });
  });

  it('upload over an existing file: sshd stopped and restarted on its port mid-file, the old file stays whole until the new one replaces it', async () => {
    const remoteDir = dir.join('up-outage');
    const remote = join(remoteDir, 'big.bin');
    await using pool = new SshPool({
      maxConnectionsPerHost: 1,
      minOpenIntervalMs: 0,
      connectRetries: 200,
      retryBaseMs: 50,
      retryMaxMs: 200,
    });
    await pool.exec(target, ['mkdir', '-p', remoteDir]);
    const old = 'the previous version\n';
    writeFileSync(remote, old);
    const upload = uploadFile(pool, target, big, remote);
    await catchMidFile(remoteDir, 'big.bin', remoteDir);
    await sshd.stop();
    try {
      // down: the transfer's next try cannot connect, and the old file is still whole
      await until(
        () => pool.stats().connectFailures >= 1,
        'a connect attempt against the dead port',
        () => `${JSON.stringify(pool.stats())} ${readdirSync(remoteDir)} ${sshd.sessions()}`,
      );
      expect(readFileSync(remote, 'utf8')).toBe(old);
    } finally {
      await sshd.start();
    }

    const report = await upload;
    expect(report).toMatchObject({ bytes: SIZE, sha256: want, replaced: true });
    expect(sha(remote)).toBe(want);
    expect(temps(remoteDir, 'big.bin')).toEqual([]);
  });

  it('download: the session killed on the server mid-file, the local destination never holds a partial file, and the retry completes verified', async () => {
    const localDir = dir.join('down-kill');
    const local = join(localDir, 'copy.bin');
    await using pool = new SshPool({ maxConnectionsPerHost: 1, minOpenIntervalMs: 0 });
    await pool.exec(target, ['mkdir', '-p', localDir]);
    const watch = watchDestination(local, SIZE);
    const download = downloadFile(pool, target, big, local);
    // the server's SFTP session is the process holding the source open
    const { frozen } = await catchMidFile(localDir, 'copy.bin', dir.path);
    expect(existsSync(local)).toBe(false);
    await sshd.killSession(defined(frozen[0], 'a frozen sftp-server'));

    const report = await download;
    watch.stop();
    expect(report).toMatchObject({ bytes: SIZE, sha256: want });
    expect(sha(local)).toBe(want);
    expect(watch.partial).toEqual([]);
    expect(temps(localDir, 'copy.bin')).toEqual([]);
  });
});
