import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { Sshd, TempDir } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { downloadFile } from './file-transfer.js';
import { sftpOps } from './sftp-ops.js';
import { SshPool } from './ssh-pool.js';
import { getStreamed, STREAMED_GET_MIN } from './streamed-get.js';
import type { SshTarget } from './target.js';

const sha = (data: Buffer) => createHash('sha256').update(data).digest('hex');

// getStreamed: a big download as `cat`'s output on an exec channel, hashed as it is written,
// and failing when the pod's file is not what it was when the transfer began.
describe('streamed downloads against a real sshd', () => {
  let sshd: Sshd;
  let target: SshTarget;
  let pool: SshPool;
  const src = new TempDir('cp-streamed-src-');
  const dst = new TempDir('cp-streamed-dst-');
  /** Past the streamed threshold, not a multiple of the 1 MiB block nor of a 32 KiB packet. */
  const data = randomBytes(STREAMED_GET_MIN + 1024 * 1024 + 12_345);
  // A name a shell would misread unquoted.
  const name = `it's a "big" $file; -x.bin`;
  const remote = src.join(name);

  beforeAll(async () => {
    chmodSync(src.path, 0o755);
    writeFileSync(remote, data);
    chmodSync(remote, 0o644);
    sshd = await Sshd.start();
    target = sshd.target();
    pool = new SshPool({ minOpenIntervalMs: 0 });
  });

  afterAll(async () => {
    await pool?.close();
    await sshd?.[Symbol.asyncDispose]();
    src[Symbol.dispose]();
    dst[Symbol.dispose]();
  });

  const statOnPod = (path: string) => pool.sftp(target, (s) => sftpOps.stat(s, path));

  it('fetches every byte in order into a new file with the given mode, hashing what it wrote', async () => {
    const local = dst.join('whole.bin');
    const seen: number[] = [];
    const got = await getStreamed(
      pool,
      target,
      remote,
      await statOnPod(remote),
      local,
      0o640,
      (n) => seen.push(n),
    );
    expect(got).toEqual({ sha256: sha(data), bytes: data.length });
    expect(readFileSync(local).equals(data)).toBe(true);
    expect(seen.at(-1)).toBe(data.length);
    expect(seen).toEqual([...seen].sort((a, b) => a - b));
  });

  it('downloadFile sends a big file through it, and a small one over SFTP', async () => {
    const small = src.join('small.bin');
    writeFileSync(small, data.subarray(0, 1000));
    chmodSync(small, 0o644);
    const exec = vi.spyOn(pool, 'exec');
    try {
      const big = await downloadFile(pool, target, remote, dst.join('via-file.bin'));
      expect(big).toMatchObject({ bytes: data.length, sha256: sha(data) });
      expect(readFileSync(dst.join('via-file.bin')).equals(data)).toBe(true);
      const cats = () => exec.mock.calls.filter(([, cmd]) => String(cmd).startsWith('cat -- '));
      expect(cats()).toHaveLength(1);
      await downloadFile(pool, target, small, dst.join('small.bin'));
      expect(cats()).toHaveLength(1);
      expect(readFileSync(dst.join('small.bin')).equals(data.subarray(0, 1000))).toBe(true);
    } finally {
      exec.mockRestore();
    }
  });

  // The pod's file changed since `before` was taken: passing an older stat plays that
  // deterministically, as a file grown, shrunk or rewritten between the stat and the read.
  it.each([
    ['grew (more bytes come than the stat said)', { size: -1, mtime: 0 }],
    ['shrank (fewer bytes come)', { size: +1, mtime: 0 }],
    ['was rewritten at the same size (mtime moved)', { size: 0, mtime: -1 }],
  ])('fails as changed-while-read when the file %s, leaving no local file', async (_what, d) => {
    const st = await statOnPod(remote);
    const local = dst.join('changed.bin');
    const before = { size: st.size + d.size, mtime: st.mtime + d.mtime };
    const seen: number[] = [0];
    const err = await getStreamed(pool, target, remote, before, local, 0o644, (n) =>
      seen.push(n),
    ).catch((e: unknown) => e);
    // Nothing past the size it started with is written: a growing file cannot fill the disk.
    expect(Math.max(...seen)).toBeLessThanOrEqual(before.size);
    expect(err).toMatchObject({ code: 'TRANSPORT_CHANGED_WHILE_READ', retryable: true });
    expect((err as Error).message).toMatch(/changed on the remote host while it was being fetched/);
    expect(existsSync(local)).toBe(false);
  });

  it('a missing file fails with cat’s own message, not retryable, leaving no local file', async () => {
    const local = dst.join('missing.bin');
    const err = await getStreamed(
      pool,
      target,
      src.join('nope.bin'),
      { size: STREAMED_GET_MIN, mtime: 0 },
      local,
      0o644,
    ).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'TRANSPORT_REMOTE_COMMAND_FAILED', retryable: false });
    expect((err as Error).message).toMatch(/No such file/);
    expect(existsSync(local)).toBe(false);
    expect(readdirSync(dst.path)).not.toContain('missing.bin');
  });

  it('exec hands stdout over in order and pauses the channel while the consumer is busy', async () => {
    const parts: Buffer[] = [];
    let busy = false;
    let overlapped = false;
    const res = await pool.exec(target, ['cat', '--', remote], {
      onStdout: (chunk) => {
        if (busy) overlapped = true;
        parts.push(Buffer.from(chunk));
        if (parts.length % 16 !== 0) return;
        busy = true;
        return new Promise<void>((r) =>
          setTimeout(() => {
            busy = false;
            r();
          }, 5),
        );
      },
    });
    expect(res).toMatchObject({ code: 0, stdout: '' });
    expect(overlapped).toBe(false);
    expect(Buffer.concat(parts).equals(data)).toBe(true);
  });

  it('exec stops the command and fails with the consumer’s error when it throws', async () => {
    let calls = 0;
    const err = await pool
      .exec(target, ['cat', '--', remote], {
        onStdout: () => {
          calls++;
          throw new Error('consumer gave up');
        },
      })
      .catch((e: unknown) => e);
    expect((err as Error).message).toBe('consumer gave up');
    expect(calls).toBe(1);
  });
});
