import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { TempDir, which } from '@computepods/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { downloadFile, uploadFile } from './file-transfer.js';
import { downloadFiles } from './files-download.js';
import { shellQuote } from './shell-quote.js';
import { testPod } from './test-pod.js';

// A pod without the tools the fast paths run (README): its sessions' PATH holds only a few
// commands, no openssl and no sha256sum, then no cat either. Every transfer must still end
// whole and verified, by reading the file back over SFTP.
const bin = new TempDir('cp-transport-bare-bin-');
chmodSync(bin.path, 0o755); // the pod's user runs them
for (const tool of ['sh', 'mkdir', 'rm', 'ls', 'cat'])
  symlinkSync(which(tool, 'coreutils'), bin.join(tool));
afterAll(() => bin[Symbol.dispose]());

describe('transfers with a pod that has no hasher, then no cat', { timeout: 60_000 }, () => {
  const pod = testPod('bare-pod', { extraConfig: [`SetEnv PATH=${bin.path}`] });
  const { local, remote } = pod;
  const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
  // Past uploadFile's streaming threshold and the hashing thread's, with an odd tail.
  const data = randomBytes(9 * 1024 * 1024 + 7);

  it('uploads a big file over SFTP instead of cat, verified by a read-back', async () => {
    expect(await pod.sh('command -v openssl sha256sum; echo $PATH')).toBe(`${bin.path}\n`);
    const from = local.join('up.bin');
    writeFileSync(from, data);
    const to = `${remote}/up.bin`;
    const got = await uploadFile(pod.pool, pod.target, from, to);
    expect(got).toEqual({
      bytes: data.length,
      sha256: sha(data),
      replaced: false,
      verifiedBy: 'reread',
      via: 'sftp',
    });
    expect((await pod.sh(`ls -A ${shellQuote(remote)}`)).split('\n')).toEqual(['up.bin', '']);
  });

  it('downloads it whole, by SFTP reads or streamed out of cat, verified by a read-back', async () => {
    const from = `${remote}/up.bin`;
    for (const via of ['sftp', 'exec'] as const) {
      const to = local.join('down', `${via}.bin`);
      const got = await downloadFile(pod.pool, pod.target, from, to, { via });
      expect(got).toEqual({
        bytes: data.length,
        sha256: sha(data),
        replaced: false,
        verifiedBy: 'reread',
        via,
      });
      expect(sha(readFileSync(to))).toBe(sha(data));
    }
    expect((await readdir(local.join('down'))).sort()).toEqual(['exec.bin', 'sftp.bin']);
  });

  it('a download asked to stream (a big file, by default) takes SFTP reads when the pod has no cat', async () => {
    rmSync(bin.join('cat'));
    const to = local.join('no-cat', 'got.bin');
    const got = await downloadFile(pod.pool, pod.target, `${remote}/up.bin`, to);
    expect(got).toEqual({
      bytes: data.length,
      sha256: sha(data),
      replaced: false,
      verifiedBy: 'reread',
      via: 'sftp',
    });
    expect(sha(readFileSync(to))).toBe(sha(data));
    // downloadFiles (the chef's fetch) streams a big file too, and reads it over SFTP here.
    const fetched = local.join('no-cat', 'fetched.bin');
    expect(
      await downloadFiles(pod.pool, pod.target, remote, [
        { rel: 'up.bin', local: fetched, sha256: sha(data) },
      ]),
    ).toEqual([{ status: 'fetched', sha256: sha(data), bytes: data.length }]);
    expect(sha(readFileSync(fetched))).toBe(sha(data));
    expect((await readdir(local.join('no-cat'))).sort()).toEqual(['fetched.bin', 'got.bin']);
  });
});
