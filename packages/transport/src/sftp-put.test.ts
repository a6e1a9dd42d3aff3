import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { sftpOps } from './sftp-ops.js';
import { shellQuote } from './shell-quote.js';
import { testPod } from './test-pod.js';

// sftpOps.fastPut: small files in one write (open, fchmod + write, close), big ones by
// ssh2's fastPut; both must give the exact bytes and mode, umask or not.
describe('sftpOps.fastPut against a real sshd', () => {
  const pod = testPod('put');
  const { local, remote } = pod;

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
    await pod.pool.sftp(pod.target, (s) => sftpOps.fastPut(s, path, to, mode));
    const res = await pod.pool.exec(
      pod.target,
      `stat -c %a ${shellQuote(to)} && sha256sum < ${shellQuote(to)}`,
    );
    const want = createHash('sha256').update(data).digest('hex');
    expect(res.stdout).toBe(`${mode.toString(8)}\n${want}  -\n`);
  });

  it('putBuffer checks a mode once per directory and session, then sends no fchmod or fstat for it', async () => {
    const calls = { fchmod: 0, fstat: 0 };
    const put = (name: string, mode: number) =>
      pod.pool.sftp(pod.target, async (s) => {
        for (const op of ['fchmod', 'fstat'] as const) {
          const real = s[op].bind(s) as (...a: unknown[]) => unknown;
          // Counts the requests sent on this session, then sends them as they were.
          Object.assign(s, {
            [op]: (...a: unknown[]) => {
              calls[op]++;
              return real(...a);
            },
          });
        }
        const seen: (typeof calls)[] = [];
        for (const n of [1, 2]) {
          await sftpOps.putBuffer(s, `${remote}/${name}-${n}`, Buffer.from(name), mode);
          seen.push({ ...calls });
        }
        return seen;
      });
    const modes = async (name: string) =>
      (
        await pod.pool.exec(
          pod.target,
          `cd ${shellQuote(remote)} && stat -c %a ${name}-1 ${name}-2`,
        )
      ).stdout;
    // A mode the umask leaves whole: checked on the first file, trusted on the second.
    calls.fchmod = calls.fstat = 0;
    expect(await put('whole', 0o640)).toEqual([
      { fchmod: 0, fstat: 1 },
      { fchmod: 0, fstat: 1 },
    ]);
    expect(await modes('whole')).toBe('640\n640\n');
    // Group and other write, which a umask of 022 or 002 cuts: set by fchmod each time.
    calls.fchmod = calls.fstat = 0;
    const cut = await put('cut', 0o666);
    expect(await modes('cut')).toBe('666\n666\n');
    expect(cut[1]?.fstat).toBe(2);
    // A file already there: truncated and given its mode, whatever the session learned.
    calls.fchmod = calls.fstat = 0;
    await pod.pool.exec(
      pod.target,
      `cd ${shellQuote(remote)} && printf 'old and longer' > again-1 && chmod 600 again-1`,
    );
    await put('again', 0o640);
    expect(await modes('again')).toBe('640\n640\n');
    expect(calls.fchmod).toBeGreaterThanOrEqual(1);
    const text = await pod.pool.exec(pod.target, `cat ${shellQuote(`${remote}/again-1`)}`);
    expect(text.stdout).toBe('again');
  });

  it('fails as a TransportError naming the remote path when the local file is gone', async () => {
    await expect(
      pod.pool.sftp(pod.target, (s) =>
        sftpOps.fastPut(s, local.join('nope'), `${remote}/nope`, 0o644),
      ),
    ).rejects.toMatchObject({ code: 'TRANSPORT_SFTP', message: expect.stringContaining('nope') });
  });
});
