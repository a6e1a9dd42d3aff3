import { createHash, randomBytes } from 'node:crypto';
import { appendFileSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { Sshd, TempDir } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getHashed, putHashed } from './hashed-copy.js';
import { SFTP_CHUNK } from './sftp-ops.js';
import { shellQuote } from './shell-quote.js';
import { SshPool } from './ssh-pool.js';
import type { SshTarget } from './target.js';

const sha = (data: Buffer) => createHash('sha256').update(data).digest('hex');

// getHashed / putHashed: pipelined SFTP copies that hash the bytes as they pass, in file order,
// whatever order the requests are answered in.
describe('hashed SFTP copies against a real sshd', () => {
  let sshd: Sshd;
  let target: SshTarget;
  let pool: SshPool;
  const local = new TempDir('cp-transport-hashed-');
  let remote: string;

  beforeAll(async () => {
    sshd = await Sshd.start();
    target = sshd.target();
    pool = new SshPool({ minOpenIntervalMs: 0 });
    remote = (await pool.exec(target, 'mkdir -p cp-hashed && cd cp-hashed && pwd')).stdout.trim();
  });

  afterAll(async () => {
    await pool?.exec(target, `rm -rf -- ${shellQuote(remote)}`);
    await pool?.close();
    await sshd?.[Symbol.asyncDispose]();
    local[Symbol.dispose]();
  });

  const sizes: [string, number][] = [
    ['empty', 0],
    ['one byte', 1],
    ['a chunk less one', SFTP_CHUNK - 1],
    ['one chunk', SFTP_CHUNK],
    ['a chunk and one', SFTP_CHUNK + 1],
    // More than the 64 requests in flight, so the window slides.
    ['70 chunks and a bit', 70 * SFTP_CHUNK + 12_345],
  ];

  it.each(sizes)(
    'puts %s: the bytes, the mode and the hash of what was sent',
    async (name, size) => {
      const data = randomBytes(size);
      const from = local.join(`up-${size}`);
      writeFileSync(from, data);
      const to = `${remote}/up-${size}`;
      const seen: number[] = [];
      const got = await pool.sftp(target, (s) =>
        putHashed(s, from, to, 0o640, (bytes) => seen.push(bytes)),
      );
      expect(got).toEqual({ sha256: sha(data), bytes: size });
      const res = await pool.exec(
        target,
        `stat -c %a ${shellQuote(to)} && sha256sum < ${shellQuote(to)}`,
      );
      expect(res.stdout, name).toBe(`640\n${sha(data)}  -\n`);
      expect(seen.at(-1) ?? 0).toBe(size);
    },
  );

  it.each(sizes)('gets %s: the bytes, the mode and the hash of what came', async (name, size) => {
    const data = randomBytes(size);
    const from = `${remote}/down-${size}`;
    await pool.sftp(target, (s) => putHashed(s, writeLocal(`src-${size}`, data), from, 0o600));
    const to = local.join(`down-${size}`);
    const got = await pool.sftp(target, (s) => getHashed(s, from, to, 0o640));
    expect(got).toEqual({ sha256: sha(data), bytes: size });
    expect(readFileSync(to).equals(data), name).toBe(true);
    expect(statSync(to).mode & 0o777).toBe(0o640 & ~process.umask());
  });

  it('refuses to write over an existing local file', async () => {
    const from = `${remote}/down-1`;
    const to = writeLocal('taken', Buffer.from('mine'));
    await expect(pool.sftp(target, (s) => getHashed(s, from, to, 0o644))).rejects.toMatchObject({
      code: 'EEXIST',
    });
    expect(readFileSync(to, 'utf8')).toBe('mine');
  });

  it('fails a put whose local file changed while it was read (its bytes may mix two versions)', async () => {
    const from = writeLocal('moving', randomBytes(8 * SFTP_CHUNK));
    let appended = false;
    const put = pool.sftp(target, (s) =>
      putHashed(s, from, `${remote}/moving`, 0o644, () => {
        if (appended) return;
        appended = true;
        appendFileSync(from, 'more');
      }),
    );
    await expect(put).rejects.toMatchObject({
      code: 'TRANSPORT_CHANGED_WHILE_READ',
      retryable: true,
      message: expect.stringContaining('moving'),
    });
  });

  it('fails a get whose remote file shrank while it was read, naming where it ended', async () => {
    const size = 200 * SFTP_CHUNK;
    const from = `${remote}/shrinking`;
    await pool.sftp(target, (s) =>
      putHashed(s, writeLocal('shrinking', randomBytes(size)), from, 0o644),
    );
    const onPod = (await pool.exec(target, `readlink -f ${shellQuote(from)}`)).stdout.trim();
    let cut = false;
    const get = pool.sftp(target, (s) =>
      getHashed(s, from, local.join('shrunk'), 0o644, () => {
        if (cut) return;
        cut = true;
        // The pod's file is this host's: the requests past the window now meet its end.
        truncateSync(onPod, 100 * SFTP_CHUNK);
      }),
    );
    await expect(get).rejects.toMatchObject({
      code: 'TRANSPORT_SFTP',
      message: expect.stringMatching(/shrinking: the file ended at \d+ bytes while it was read/),
    });
  });

  it('names the remote path when it is missing', async () => {
    await expect(
      pool.sftp(target, (s) => getHashed(s, `${remote}/nope`, local.join('nope'), 0o644)),
    ).rejects.toMatchObject({ code: 'TRANSPORT_SFTP', message: expect.stringContaining('nope') });
  });

  function writeLocal(name: string, data: Buffer): string {
    const path = local.join(name);
    writeFileSync(path, data);
    return path;
  }
});
