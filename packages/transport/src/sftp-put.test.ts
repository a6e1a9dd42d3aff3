import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { Sshd, TempDir } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sftpOps } from './sftp-ops.js';
import { shellQuote } from './shell-quote.js';
import { SshPool } from './ssh-pool.js';
import type { SshTarget } from './target.js';

// sftpOps.fastPut: small files in one write (open, fchmod + write, close), big ones by
// ssh2's fastPut; both must give the exact bytes and mode, umask or not.
describe('sftpOps.fastPut against a real sshd', () => {
  let sshd: Sshd;
  let target: SshTarget;
  let pool: SshPool;
  const local = new TempDir('cp-transport-put-');
  const remote = `cp-put-test-${process.pid}-${randomBytes(3).toString('hex')}`;

  beforeAll(async () => {
    sshd = await Sshd.start();
    target = sshd.target();
    pool = new SshPool({ minOpenIntervalMs: 0 });
    await pool.exec(target, `mkdir -p ${shellQuote(remote)}`);
  });

  afterAll(async () => {
    await pool?.exec(target, `rm -rf -- ${shellQuote(remote)}`);
    await pool?.close();
    await sshd?.[Symbol.asyncDispose]();
    local[Symbol.dispose]();
  });

  it.each([
    ['empty', 0, 0o600],
    ['small', 4096, 0o775],
    ['at the limit', 64 * 1024, 0o640],
    ['big', 3 * 1024 * 1024 + 17, 0o755],
  ])('puts a %s file with its bytes and mode', async (name, size, mode) => {
    const data = randomBytes(size);
    const path = local.join(name);
    writeFileSync(path, data);
    const to = `${remote}/${name.replaceAll(' ', '-')}`;
    await pool.sftp(target, (s) => sftpOps.fastPut(s, path, to, mode));
    const res = await pool.exec(
      target,
      `stat -c %a ${shellQuote(to)} && sha256sum < ${shellQuote(to)}`,
    );
    const want = createHash('sha256').update(data).digest('hex');
    expect(res.stdout).toBe(`${mode.toString(8)}\n${want}  -\n`);
  });

  it('fails as a TransportError naming the remote path when the local file is gone', async () => {
    await expect(
      pool.sftp(target, (s) => sftpOps.fastPut(s, local.join('nope'), `${remote}/nope`, 0o644)),
    ).rejects.toMatchObject({ code: 'TRANSPORT_SFTP', message: expect.stringContaining('nope') });
  });
});
