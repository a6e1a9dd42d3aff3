import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { downloadFile, STREAM_FROM } from './file-transfer.js';
import { shellQuote } from './shell-quote.js';
import { getStreamed } from './stream-get.js';
import { testPod } from './test-pod.js';

// downloadFile's exec path (its default for a big file): the bytes streamed out of cat over one
// exec channel, each chunk written and hashed here as it arrives; and the pool's exec handing
// stdout to a sink.
describe('streamed get over exec against a real sshd', { timeout: 60_000 }, () => {
  const pod = testPod('stream-get');
  const { local, remote, sh } = pod;
  const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

  /** A file of `data` on the pod, made by its user, under a name the shell must not read. */
  const onPod = async (name: string, data: Buffer, mode = 0o640) => {
    const to = `${remote}/${name}`;
    const res = await pod.pool.exec(
      pod.target,
      `cat > ${shellQuote(to)} && chmod ${mode.toString(8)} -- ${shellQuote(to)}`,
      {
        stdin: data,
      },
    );
    expect(res.code).toBe(0);
    return to;
  };

  it('downloadFile streams a big file over exec by default: its exact bytes and mode, no temp left', async () => {
    const data = randomBytes(9 * 1024 * 1024 + 13); // odd tail
    const from = await onPod(`-x 'q' $(touch pwned) ;rm`, data);
    let streamed = 0;
    const exec = pod.pool.exec.bind(pod.pool);
    pod.pool.exec = (t, command, options) => {
      if (options?.stdout) streamed++;
      return exec(t, command, options);
    };
    try {
      const to = local.join('down', 'big.bin');
      const got = await downloadFile(pod.pool, pod.target, from, to);
      expect(got).toEqual({
        bytes: data.length,
        sha256: sha(data),
        replaced: false,
        verifiedBy: 'sha256sum',
        via: 'exec',
      });
      expect(streamed).toBe(1);
      expect(sha(readFileSync(to))).toBe(sha(data));
      expect(statSync(to).mode & 0o777).toBe(0o640);
      expect(await readdir(local.join('down'))).toEqual(['big.bin']);
      expect((await sh(`ls -A; ls -A ${shellQuote(remote)}`)).split('\n')).not.toContain('pwned');
      // SFTP reads, asked for, give the same file and stream nothing.
      const again = await downloadFile(pod.pool, pod.target, from, to, { via: 'sftp' });
      expect(streamed).toBe(1);
      expect(again).toMatchObject({ sha256: sha(data), replaced: true, via: 'sftp' });
      // Below STREAM_FROM, SFTP reads are the default.
      const small = randomBytes(STREAM_FROM - 1);
      const smallTo = local.join('down', 'small.bin');
      expect(
        await downloadFile(pod.pool, pod.target, await onPod('small.bin', small), smallTo),
      ).toMatchObject({ sha256: sha(small), via: 'sftp' });
      expect(streamed).toBe(1);
      expect(sha(readFileSync(smallTo))).toBe(sha(small));
    } finally {
      pod.pool.exec = exec;
    }
  });

  it('a file that read other than the size its stat gave fails, retryably', async () => {
    const data = randomBytes(3 * 1024 * 1024);
    const from = await onPod('short.bin', data);
    const err = await getStreamed(
      pod.pool,
      pod.target,
      from,
      data.length + 1,
      local.join('short'),
      0o644,
    ).catch((e) => e);
    expect(err).toMatchObject({ code: 'TRANSPORT_REMOTE_COMMAND_FAILED', retryable: true });
    expect(err.message).toContain(`read ${data.length} bytes of the ${data.length + 1}`);
  });

  it('exec: a stdout sink that makes the channel wait gets every byte, in order', async () => {
    const data = randomBytes(6 * 1024 * 1024 + 5);
    const from = await onPod('slow.bin', data);
    const parts: Buffer[] = [];
    let waited = 0;
    const res = await pod.pool.exec(pod.target, `cat -- ${shellQuote(from)}`, {
      stdout: (chunk) => {
        parts.push(Buffer.from(chunk));
        if (parts.length % 16 !== 0) return undefined;
        waited++;
        return new Promise((r) => setTimeout(r, 5));
      },
    });
    expect(res).toMatchObject({ code: 0, stdout: '' });
    expect(waited).toBeGreaterThan(4);
    expect(sha(Buffer.concat(parts))).toBe(sha(data));
  });

  it("exec: a stdout sink failing kills the command, which fails with the sink's error", async () => {
    const marker = `${remote}/finished`;
    let calls = 0;
    const err = await pod.pool
      .exec(pod.target, `yes | head -c 100000000; touch ${shellQuote(marker)}`, {
        stdout: () => {
          calls++;
          return calls === 3 ? Promise.reject(new Error('local disk full')) : undefined;
        },
      })
      .catch((e) => e);
    expect(err).toBeInstanceOf(Error);
    expect(err.message).toBe('local disk full');
    expect(await sh(`ls -A ${shellQuote(remote)}`)).not.toMatch(/finished/);
  });

  it('downloadFile via exec refuses an existing destination when asked, and replaces it otherwise', async () => {
    const data = randomBytes(2 * 1024 * 1024);
    const from = await onPod('again.bin', data);
    const to = local.join('again.bin');
    writeFileSync(to, 'old');
    const refused = await downloadFile(pod.pool, pod.target, from, to, {
      ifExists: 'fail',
      via: 'exec',
    }).catch((e) => e);
    expect(refused).toMatchObject({ code: 'TRANSPORT_DESTINATION_EXISTS' });
    expect(await downloadFile(pod.pool, pod.target, from, to, { via: 'exec' })).toMatchObject({
      replaced: true,
      sha256: sha(data),
    });
    expect(sha(readFileSync(to))).toBe(sha(data));
  });
});
