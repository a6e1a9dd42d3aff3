import { createHash, randomBytes } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { Sshd, TempDir } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChangedWhileReadError, TransportError, UnsafePathError, VerifyError } from './errors.js';
import { downloadFile, uploadFile } from './file-transfer.js';
import { sha256File } from './hashing.js';
import { assertSafeEntryName, commandPath } from './safe-path.js';
import { shellQuote } from './shell-quote.js';
import { SshPool } from './ssh-pool.js';
import type { SshTarget } from './target.js';
import { downloadTree, uploadTree } from './tree-transfer.js';

// Contents as SHA-256: vitest compares Buffers element by element, far too slowly for MBs.
function walk(root: string, rel = ''): Map<string, { sha256: string; mode: number } | 'dir'> {
  const out = new Map<string, { sha256: string; mode: number } | 'dir'>();
  for (const name of readdirSync(join(root, rel)).sort()) {
    const r = rel ? `${rel}/${name}` : name;
    const st = statSync(join(root, r));
    if (st.isDirectory()) {
      out.set(r, 'dir');
      for (const [k, v] of walk(root, r)) out.set(k, v);
    } else {
      const sha256 = createHash('sha256')
        .update(readFileSync(join(root, r)))
        .digest('hex');
      out.set(r, { sha256, mode: st.mode & 0o777 });
    }
  }
  return out;
}

describe('SFTP transfers against a real sshd', () => {
  let sshd: Sshd;
  let target: SshTarget;
  let pool: SshPool;
  const local = new TempDir('cp-transport-tree-');
  const src = local.join('src');
  // relative remote paths resolve in cpuser's home, for SFTP and for exec alike
  const remoteBase = `cp-tree-test-${process.pid}-${randomBytes(3).toString('hex')}`;

  const remoteListing = async (dir: string) =>
    (await pool.exec(target, `cd ${shellQuote(dir)} && find . -mindepth 1 | sort`)).stdout;

  beforeAll(async () => {
    sshd = await Sshd.start();
    target = sshd.target();
    pool = new SshPool({ minOpenIntervalMs: 0 });
    mkdirSync(join(src, 'sub', 'deeper'), { recursive: true });
    mkdirSync(join(src, 'empty-dir'));
    writeFileSync(join(src, 'main.tex'), '\\documentclass{article}\n');
    writeFileSync(join(src, 'empty'), '');
    writeFileSync(join(src, '.hidden'), 'h');
    writeFileSync(join(src, 'sub', 'blob.bin'), randomBytes(1_500_000));
    writeFileSync(join(src, 'sub', 'deeper', 'it\'s a "name" $(x) `y`; z'), 'hostile name');
    // reads as an option to sha256sum, rm, cat... unless given as ./-n
    writeFileSync(join(src, 'sub', '-n'), 'option-like name');
    writeFileSync(join(src, 'run.sh'), '#!/bin/sh\necho run\n');
    chmodSync(join(src, 'run.sh'), 0o755);
  });
  afterAll(async () => {
    await pool?.exec(target, ['rm', '-rf', '--', remoteBase]).catch(() => undefined);
    await pool?.close();
    await sshd?.[Symbol.asyncDispose]();
    local[Symbol.dispose]();
  });

  it('uploads a tree, verified, and downloads it back byte-identical', async () => {
    const remote = `${remoteBase}/a/up`;
    const up = await uploadTree(pool, target, src, remote);
    expect(up).toMatchObject({ files: 7, dirs: 3, replaced: false, verifiedBy: 'sha256sum' });
    expect(up.sha256['sub/blob.bin']).toBe(await sha256File(join(src, 'sub', 'blob.bin')));
    expect((await pool.exec(target, `./${shellQuote(remote)}/run.sh`)).stdout).toBe('run\n');
    // no temp siblings left behind
    expect((await pool.exec(target, ['ls', '-A', `${remoteBase}/a`])).stdout).toBe('up\n');

    const back = local.join('back');
    const down = await downloadTree(pool, target, remote, back);
    expect(down).toMatchObject({ files: 7, dirs: 3, replaced: false, verifiedBy: 'sha256sum' });
    expect(walk(back)).toEqual(walk(src));
    expect(readdirSync(local.path).sort()).toEqual(['back', 'src']);
  });

  it('replaces an existing remote tree as a whole, and can refuse to', async () => {
    const remote = `${remoteBase}/replace`;
    await uploadTree(pool, target, src, remote);
    const v2 = local.join('v2');
    mkdirSync(join(v2, 'only'), { recursive: true });
    writeFileSync(join(v2, 'only', 'new.txt'), 'v2');
    const refused = await uploadTree(pool, target, v2, remote, { ifExists: 'fail' }).catch(
      (e) => e,
    );
    expect(refused).toMatchObject({ code: 'TRANSPORT_DESTINATION_EXISTS' });
    const rep = await uploadTree(pool, target, v2, remote);
    expect(rep).toMatchObject({ files: 1, replaced: true });
    expect(await remoteListing(remote)).toBe('./only\n./only/new.txt\n');
    expect((await pool.exec(target, ['ls', '-A', remoteBase])).stdout).not.toMatch(/\.(tmp|old)-/);
  });

  it('replaces an existing local tree on download', async () => {
    const remote = `${remoteBase}/dl`;
    await uploadTree(pool, target, src, remote);
    const dest = local.join('dl');
    mkdirSync(dest);
    writeFileSync(join(dest, 'stale'), 'old');
    const rep = await downloadTree(pool, target, remote, dest);
    expect(rep.replaced).toBe(true);
    expect(walk(dest)).toEqual(walk(src));
    expect(readdirSync(local.path).filter((n) => /\.(tmp|old)-/.test(n))).toEqual([]);
  });

  it('verifies by reading back over SFTP when asked', async () => {
    const rep = await uploadTree(pool, target, src, `${remoteBase}/reread`, { verify: 'reread' });
    expect(rep.verifiedBy).toBe('reread');
    const down = await downloadTree(pool, target, `${remoteBase}/reread`, local.join('rr'), {
      verify: 'reread',
    });
    expect(down.verifiedBy).toBe('reread');
    expect(walk(local.join('rr'))).toEqual(walk(src));
  });

  it('transfers only listed files, creating their parents', async () => {
    const remote = `${remoteBase}/some`;
    const rep = await uploadTree(pool, target, src, remote, {
      files: ['sub/deeper/it\'s a "name" $(x) `y`; z', 'main.tex'],
    });
    expect(rep).toMatchObject({ files: 2, dirs: 2 });
    expect(await remoteListing(remote)).toBe(
      './main.tex\n./sub\n./sub/deeper\n./sub/deeper/it\'s a "name" $(x) `y`; z\n',
    );
  });

  it('refuses path traversal before touching anything', async () => {
    for (const bad of ['../escape', '/etc/passwd', 'sub/../../x', 'a//b', './x', 'a\\..\\b']) {
      const err = await uploadTree(pool, target, src, `${remoteBase}/trav`, { files: [bad] }).catch(
        (e) => e,
      );
      expect(err, bad).toBeInstanceOf(UnsafePathError);
      expect(err.code).toBe('TRANSPORT_UNSAFE_PATH');
      expect(err.message).toContain(JSON.stringify(bad));
      const down = await downloadTree(pool, target, `${remoteBase}/a/up`, local.join('trav'), {
        files: [bad],
      }).catch((e) => e);
      expect(down, bad).toBeInstanceOf(UnsafePathError);
    }
    expect((await pool.exec(target, ['ls', '-A', remoteBase])).stdout).not.toMatch(/trav/);
    expect(existsSync(local.join('trav'))).toBe(false);
    // what a hostile server might list
    for (const name of ['..', '.', 'a/b', '../../etc', '']) {
      expect(() => assertSafeEntryName(name, 'dir')).toThrow(UnsafePathError);
    }
  });

  it('refuses symlinks instead of following them', async () => {
    const withLink = local.join('withlink');
    mkdirSync(withLink);
    symlinkSync('/etc/passwd', join(withLink, 'passwd'));
    const err = await uploadTree(pool, target, withLink, `${remoteBase}/link`).catch((e) => e);
    expect(err).toMatchObject({ code: 'TRANSPORT_UNSUPPORTED_FILE' });
  });

  it('uploads and downloads single files with verification and atomic replace', async () => {
    const remote = `${remoteBase}/files/deep/blob.bin`;
    const up = await uploadFile(pool, target, join(src, 'sub', 'blob.bin'), remote);
    expect(up).toMatchObject({ bytes: 1_500_000, replaced: false, verifiedBy: 'sha256sum' });
    const up2 = await uploadFile(pool, target, join(src, 'main.tex'), remote);
    expect(up2.replaced).toBe(true);
    const refused = await uploadFile(pool, target, join(src, 'main.tex'), remote, {
      ifExists: 'fail',
    }).catch((e) => e);
    expect(refused).toMatchObject({ code: 'TRANSPORT_DESTINATION_EXISTS' });
    const to = local.join('files', 'got.tex');
    const down = await downloadFile(pool, target, remote, to);
    expect(down.sha256).toBe(up2.sha256);
    expect(readFileSync(to).equals(readFileSync(join(src, 'main.tex')))).toBe(true);
    expect((await pool.exec(target, ['ls', '-A', `${remoteBase}/files/deep`])).stdout).toBe(
      'blob.bin\n',
    );
    expect(readdirSync(local.join('files'))).toEqual(['got.tex']);
  });

  it('refuses to install a file whose hash does not survive the transfer', async () => {
    // /proc files read differently each time (and stat as size 0), a real corruption source
    const downErr = await downloadFile(pool, target, '/proc/self/status', local.join('st')).catch(
      (e) => e,
    );
    expect(downErr).toBeInstanceOf(VerifyError);
    expect(downErr).toMatchObject({ code: 'TRANSPORT_VERIFY_FAILED', retryable: true });
    expect(existsSync(local.join('st'))).toBe(false);
    expect(readdirSync(local.path).filter((n) => n.includes('.st.tmp-'))).toEqual([]);

    const remote = `${remoteBase}/verify/status`;
    // Up, the hash is taken of the bytes as they are sent, so the pod's hash agrees; but the
    // file did not read as its stat said (size 0): refused as changed while read.
    const upErr = await uploadFile(pool, target, '/proc/self/status', remote).catch((e) => e);
    expect(upErr).toBeInstanceOf(ChangedWhileReadError);
    expect(upErr).toMatchObject({ code: 'TRANSPORT_CHANGED_WHILE_READ', retryable: true });
    expect((await pool.exec(target, ['ls', '-A', `${remoteBase}/verify`])).stdout).toBe('');
  });

  it('never carries setuid, setgid or sticky bits, either way, file or tree', async () => {
    const suid = local.join('suid');
    mkdirSync(suid);
    const bin = join(suid, 'tool');
    writeFileSync(bin, '#!/bin/sh\necho tool\n');
    chmodSync(bin, 0o4755);
    const sgid = join(suid, 'group-tool');
    writeFileSync(sgid, 'g');
    chmodSync(sgid, 0o2750);
    expect(statSync(bin).mode & 0o7777).toBe(0o4755);
    const remoteMode = async (path: string) =>
      (await pool.exec(target, ['stat', '-c', '%a', '--', path])).stdout.trim();

    await uploadFile(pool, target, bin, `${remoteBase}/modes/one/tool`);
    expect(await remoteMode(`${remoteBase}/modes/one/tool`)).toBe('755');
    await uploadTree(pool, target, suid, `${remoteBase}/modes/tree`);
    expect(await remoteMode(`${remoteBase}/modes/tree/tool`)).toBe('755');
    expect(await remoteMode(`${remoteBase}/modes/tree/group-tool`)).toBe('750');

    // And back: the remote side sets the bits itself; what lands here has none.
    const r = `${remoteBase}/modes/remote`;
    await pool.exec(target, ['mkdir', '-p', '--', r]);
    await pool.exec(target, ['sh', '-c', 'printf x > "$1/s" && chmod 4755 "$1/s"', 'sh', r]);
    await pool.exec(target, ['sh', '-c', 'printf y > "$1/t" && chmod 3775 "$1/t"', 'sh', r]);
    expect(await remoteMode(`${r}/s`)).toBe('4755');
    await downloadFile(pool, target, `${r}/s`, local.join('modes-s'));
    expect(statSync(local.join('modes-s')).mode & 0o7777).toBe(0o755);
    await downloadTree(pool, target, r, local.join('modes-tree'));
    expect(statSync(local.join('modes-tree', 's')).mode & 0o7777).toBe(0o755);
    expect(statSync(local.join('modes-tree', 't')).mode & 0o7777).toBe(0o775);
  });

  it('refuses names holding control characters, leaving nothing behind', async () => {
    const odd = local.join('odd');
    mkdirSync(odd);
    writeFileSync(join(odd, 'new\nline'), 'newline in name');
    const remote = `${remoteBase}/odd`;
    const err = await uploadTree(pool, target, odd, remote).catch((e) => e);
    expect(err).toBeInstanceOf(UnsafePathError);
    expect(err.message).toMatch(/"new\\nline".*control character/);
    expect((await pool.exec(target, ['ls', '-A', remoteBase])).stdout).not.toMatch(/odd/);
    expect(() => commandPath('a\tb', 'files.outputs')).toThrow(
      /refusing files\.outputs "a\\tb": it holds a control character/,
    );
    expect(commandPath('-rf')).toBe('./-rf');
    expect(commandPath('/abs/-x')).toBe('/abs/-x');
  });

  it('says clearly when the local tree is missing', async () => {
    const err = await uploadTree(pool, target, local.join('nope'), `${remoteBase}/x`).catch(
      (e) => e,
    );
    expect(err).toBeInstanceOf(TransportError);
    expect(err.message).toMatch(/nope/);
  });
});
