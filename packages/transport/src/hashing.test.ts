import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { Sshd, TempDir } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REMOTE_SHA256_SCRIPT, sha256Remote } from './hashing.js';
import { shellQuote } from './shell-quote.js';
import { SshPool } from './ssh-pool.js';
import type { SshTarget } from './target.js';

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

// Names a shell or a hasher could trip on: an option look-alike, blanks, quotes, a backslash
// (sha256sum escapes it and starts the line with '\'; OpenSSL does not).
const FILES: Record<string, string> = {
  plain: 'plain bytes',
  '-dash': 'looks like an option',
  'sp ace *star': 'blank and star',
  'q\'uote"s': 'quotes',
  'back\\slash': 'backslash',
  'sub/deep.bin': randomBytes(300_000).toString('base64'),
};

describe('REMOTE_SHA256_SCRIPT (OpenSSL, else sha256sum)', () => {
  const dir = new TempDir('cp-transport-hash-');
  const files = Object.entries(FILES).filter(([n]) => !n.includes('/'));
  const names = files.map(([n]) => n);
  beforeAll(() => {
    for (const [n, text] of files) writeFileSync(dir.join(n), text);
  });
  afterAll(() => dir[Symbol.dispose]());

  const run = (path: string) =>
    spawnSync('/bin/sh', ['-c', REMOTE_SHA256_SCRIPT, 'sh', ...names.map((n) => `./${n}`)], {
      cwd: dir.path,
      env: { PATH: path },
      encoding: 'utf8',
    });
  const hashes = (stdout: string) =>
    stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => /^\\?([0-9a-f]{64}) /.exec(l)?.[1]);

  it('prints one hash line per file, in order, with OpenSSL and with sha256sum alone', () => {
    const want = files.map(([, text]) => sha(text));
    const withOpenssl = run('/usr/bin:/bin');
    expect(withOpenssl.status).toBe(0);
    expect(hashes(withOpenssl.stdout)).toEqual(want);

    // An openssl that fails (too old, broken): sha256sum answers instead.
    const fake = dir.join('fake-bin');
    mkdirSync(fake);
    writeFileSync(`${fake}/openssl`, '#!/bin/sh\necho partial\nexit 1\n');
    chmodSync(`${fake}/openssl`, 0o755);
    const fallback = run(`${fake}:/usr/bin:/bin`);
    expect(fallback.status).toBe(0);
    expect(hashes(fallback.stdout)).toEqual(want);
  });

  it('exits 127 when neither hasher exists, so callers re-read over SFTP', () => {
    const empty = dir.join('empty-bin');
    mkdirSync(empty);
    expect(run(empty).status).toBe(127);
  });
});

describe('sha256Remote against a real sshd', () => {
  let sshd: Sshd;
  let target: SshTarget;
  let pool: SshPool;
  const remote = `cp-hash-test-${process.pid}-${randomBytes(3).toString('hex')}`;

  beforeAll(async () => {
    sshd = await Sshd.start();
    target = sshd.target();
    pool = new SshPool({ minOpenIntervalMs: 0 });
    await pool.sftp(target, async (s) => {
      const put = (p: string, data: string) =>
        new Promise<void>((res, rej) => s.writeFile(p, data, (e) => (e ? rej(e) : res())));
      const mkdir = (p: string) =>
        new Promise<void>((res, rej) => s.mkdir(p, (e) => (e ? rej(e) : res())));
      await mkdir(remote);
      await mkdir(`${remote}/sub`);
      for (const [n, data] of Object.entries(FILES)) await put(`${remote}/${n}`, data);
    });
  });

  afterAll(async () => {
    await pool?.exec(target, `rm -rf -- ${shellQuote(remote)}`);
    await pool?.close();
    await sshd?.[Symbol.asyncDispose]();
  });

  it('hashes every file of a batch, whatever its name', async () => {
    const got = await sha256Remote(pool, target, remote, Object.keys(FILES));
    expect(got).toEqual(new Map(Object.entries(FILES).map(([n, d]) => [n, sha(d)])));
  });

  it('hashes the same with sha256sum alone, for files known to be small', async () => {
    const got = await sha256Remote(pool, target, remote, Object.keys(FILES), { bytes: 1 });
    expect(got).toEqual(new Map(Object.entries(FILES).map(([n, d]) => [n, sha(d)])));
  });

  it('fails naming the directory when a file is missing', async () => {
    await expect(sha256Remote(pool, target, remote, ['plain', 'missing'])).rejects.toThrow(
      /sha256sum in .* failed \(1\).*missing/,
    );
  });
});
