import { createHash, randomBytes } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { processesUsing, Sshd, TempDir, until } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { downloadFiles, type FilesDownloadItem } from './files-download.js';
import { SshPool } from './ssh-pool.js';
import type { SshTarget } from './target.js';

// downloadFiles: a batch of files from one host on one SFTP session, each verified by SHA-256
// and renamed into place, against a real sshd (the remote files are the test's own, readable
// by the sshd user).
describe('downloadFiles against a real sshd', { timeout: 120_000 }, () => {
  let sshd: Sshd;
  let target: SshTarget;
  const dir = new TempDir('cp-files-down-');
  const src = dir.join('src');
  const sha = (data: Buffer) => createHash('sha256').update(data).digest('hex');
  const files = new Map<string, { data: Buffer; mode: number }>();
  const put = (rel: string, data: Buffer, mode = 0o644) => {
    const p = join(src, rel);
    mkdirSync(dirname(p), { recursive: true });
    writeFileSync(p, data);
    chmodSync(p, mode);
    files.set(rel, { data, mode });
  };
  const bytesOf = (rel: string): Buffer => files.get(rel)?.data ?? Buffer.alloc(0);
  /** Every name under `folder` (recursively) that is a transfer's temp file. */
  const temps = (folder: string): string[] =>
    readdirSync(folder, { recursive: true })
      .map(String)
      .filter((n) => /(^|\/)\.[^/]*\.tmp-[0-9a-f]+$/.test(n));

  beforeAll(async () => {
    chmodSync(dir.path, 0o755);
    for (let i = 0; i < 300; i++) put(`d${i % 7}/sub/f${i}.bin`, randomBytes(i % 3 ? 4096 : i));
    put('empty', Buffer.alloc(0), 0o604);
    put('exec.sh', Buffer.from('#!/bin/sh\necho hi\n'), 0o755);
    put('over-64k.bin', randomBytes(64 * 1024 + 1));
    put('big.bin', randomBytes(3 * 1024 * 1024 + 5), 0o664);
    mkdirSync(join(src, 'a-dir'));
    chmodSync(src, 0o755);
    sshd = await Sshd.start();
    target = sshd.target();
  }, 60_000);
  afterAll(async () => {
    await sshd?.[Symbol.asyncDispose]();
    dir[Symbol.dispose]();
  });

  const items = (to: string, withHash: boolean): FilesDownloadItem[] =>
    [...files].map(([rel, f]) => ({
      rel,
      local: join(to, rel),
      ...(withHash ? { sha256: sha(f.data) } : {}),
    }));

  it.each([
    ['checked against the hashes asked for', true],
    ['checked against the hashes the host computes', false],
  ])(
    'fetches 304 files of every size on one SFTP session, %s, with their modes',
    async (_, withHash) => {
      const to = dir.join(`to-${withHash}`);
      await using pool = new SshPool({ minOpenIntervalMs: 0 });
      const out = await downloadFiles(pool, target, src, items(to, withHash));
      expect(out.filter((o) => o.status !== 'fetched')).toEqual([]);
      for (const [rel, f] of files) {
        expect(readFileSync(join(to, rel)).equals(f.data), rel).toBe(true);
        expect(statSync(join(to, rel)).mode & 0o777, rel).toBe(f.mode);
      }
      expect(out.map((o) => (o.status === 'fetched' ? o.sha256 : ''))).toEqual(
        [...files.values()].map((f) => sha(f.data)),
      );
      expect(temps(to)).toEqual([]);
      // One connection, one SFTP session, one exec streaming big.bin out of cat (plus the
      // hashing exec when no hashes were given).
      expect(pool.stats()).toMatchObject({
        connectionsOpened: 1,
        channelsOpened: withHash ? 2 : 3,
      });
    },
  );

  it('writes nothing where the remote bytes are not the ones asked for, and says which it saw', async () => {
    const to = dir.join('other');
    mkdirSync(to);
    writeFileSync(join(to, 'empty'), 'the old bytes\n');
    writeFileSync(join(to, 'big.bin'), 'the old big bytes\n');
    await using pool = new SshPool({ minOpenIntervalMs: 0 });
    const asked = [
      { rel: 'empty', local: join(to, 'empty'), sha256: sha(Buffer.from('x')) },
      { rel: 'big.bin', local: join(to, 'big.bin'), sha256: sha(Buffer.from('y')) },
      { rel: 'exec.sh', local: join(to, 'exec.sh'), sha256: sha(bytesOf('exec.sh')) },
    ];
    const out = await downloadFiles(pool, target, src, asked);
    expect(out).toEqual([
      { status: 'other', sha256: sha(Buffer.alloc(0)), bytes: 0 },
      { status: 'other', sha256: sha(bytesOf('big.bin')), bytes: 3 * 1024 * 1024 + 5 },
      { status: 'fetched', sha256: sha(bytesOf('exec.sh')), bytes: 18 },
    ]);
    expect(readFileSync(join(to, 'empty'), 'utf8')).toBe('the old bytes\n');
    expect(readFileSync(join(to, 'big.bin'), 'utf8')).toBe('the old big bytes\n');
    expect(temps(to)).toEqual([]);
  });

  it('fails a missing file and a directory by name, and fetches the others', async () => {
    const to = dir.join('some-fail');
    await using pool = new SshPool({ minOpenIntervalMs: 0 });
    const out = await downloadFiles(pool, target, src, [
      { rel: 'nope.txt', local: join(to, 'nope.txt') },
      { rel: 'a-dir', local: join(to, 'a-dir') },
      { rel: 'exec.sh', local: join(to, 'exec.sh') },
    ]);
    expect(out[0]).toMatchObject({
      status: 'failed',
      error: { code: 'TRANSPORT_SFTP', message: expect.stringContaining('nope.txt') },
    });
    expect(out[1]).toMatchObject({
      status: 'failed',
      error: { message: expect.stringContaining('a-dir') },
    });
    expect(out[2]).toMatchObject({ status: 'fetched' });
    expect(existsSync(join(to, 'nope.txt'))).toBe(false);
    expect(existsSync(join(to, 'a-dir'))).toBe(false);
    expect(temps(to)).toEqual([]);
  });

  it.each(['../src/exec.sh', '/etc/passwd', 'a/./b', 'a\nb'])(
    'refuses the name %j before fetching anything',
    async (rel) => {
      await using pool = new SshPool({ minOpenIntervalMs: 0 });
      await expect(
        downloadFiles(pool, target, src, [
          { rel: 'exec.sh', local: dir.join('refused', 'exec.sh') },
          { rel, local: dir.join('refused', 'x') },
        ]),
      ).rejects.toMatchObject({ code: 'TRANSPORT_UNSAFE_PATH' });
      expect(pool.stats().channelsOpened).toBe(0);
      expect(existsSync(dir.join('refused'))).toBe(false);
    },
  );

  it('the session killed on the server mid-batch: the cut-off files are fetched again on a new connection, never seen partial', async () => {
    const SIZE = 48 * 1024 * 1024;
    const huge = randomBytes(SIZE);
    put('huge/huge.bin', huge);
    const to = dir.join('cut');
    await using pool = new SshPool({ maxConnectionsPerHost: 1, minOpenIntervalMs: 0 });
    const partial: number[] = [];
    const watch = setInterval(() => {
      const st = statSync(join(to, 'huge/huge.bin'), { throwIfNoEntry: false });
      if (st && st.size !== SIZE) partial.push(st.size);
    }, 5);
    const batch = downloadFiles(pool, target, src, items(to, true));
    // Caught mid-file without racing it: once the huge file's temp has grown, the server's
    // process holding the source open (`cat`, streaming it over exec) is frozen, then its
    // session killed.
    let frozen: number[] = [];
    await until(
      () => {
        const t = existsSync(join(to, 'huge')) && temps(join(to, 'huge'))[0];
        if (!t || statSync(join(to, 'huge', t)).size === 0) return false;
        frozen = processesUsing(join(src, 'huge')).filter((pid) =>
          /^(cat|sshd|sftp)/.test(readFileSync(`/proc/${pid}/cmdline`, 'utf8')),
        );
        for (const pid of frozen) process.kill(pid, 'SIGSTOP');
        return frozen.length > 0;
      },
      'the huge file under way',
      60_000,
    );
    await sshd.killSession(frozen[0] ?? 0);
    const out = await batch;
    clearInterval(watch);
    expect(out.filter((o) => o.status !== 'fetched')).toEqual([]);
    for (const [rel, f] of files)
      expect(readFileSync(join(to, rel)).equals(f.data), rel).toBe(true);
    expect(partial).toEqual([]);
    expect(temps(to)).toEqual([]);
    expect(pool.stats().connectionsOpened).toBe(2);
  });
});
