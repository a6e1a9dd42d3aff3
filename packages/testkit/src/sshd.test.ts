import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BinaryMissingError } from './errors.js';
import { runCommand } from './run-command.js';
import { Sshd } from './sshd.js';

describe('Sshd', () => {
  let sshd: Sshd;
  beforeAll(async () => {
    sshd = await Sshd.start({ users: ['cpuser', 'cpuser2'] });
  });
  afterAll(async () => {
    await sshd?.[Symbol.asyncDispose]();
  });

  it('lets each user in with their own key, on loopback', async () => {
    expect(sshd.host).toBe('127.0.0.1');
    expect(sshd.port).toBeGreaterThan(0);
    const first = await sshd.ssh('id -un');
    expect(first).toMatchObject({ code: 0, stdout: 'cpuser\n' });
    const second = await sshd.ssh('id -un', { user: 'cpuser2' });
    expect(second).toMatchObject({ code: 0, stdout: 'cpuser2\n' });
  });

  it('refuses a key that is not authorized for the user', async () => {
    const res = await runCommand('ssh', [
      ...['-p', String(sshd.port), '-i', sshd.user('cpuser2').privateKeyPath],
      ...['-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes'],
      ...['-o', `UserKnownHostsFile=${sshd.knownHostsPath}`, '-o', 'StrictHostKeyChecking=yes'],
      `cpuser@${sshd.host}`,
      'true',
    ]);
    expect(res.code).toBe(255);
    expect(res.stderr).toMatch(/Permission denied/);
  });

  it('publishes its host key in known_hosts, so strict clients verify it', () => {
    const line = readFileSync(sshd.knownHostsPath, 'utf8').trim();
    expect(line).toBe(`[127.0.0.1]:${sshd.port} ${sshd.hostPublicKey}`);
    expect(sshd.hostPublicKey).toMatch(/^ssh-ed25519 AAAA/);
  });

  it('lets root impersonate the second user with sudo', async () => {
    const res = await runCommand('sudo', ['-n', '-u', 'cpuser2', 'id', '-un']);
    expect(res).toMatchObject({ code: 0, stdout: 'cpuser2\n' });
  });

  it('passes stdin through', async () => {
    const res = await sshd.ssh('cat', { input: 'hello\n' });
    expect(res.stdout).toBe('hello\n');
  });

  it('says clearly when the daemon is missing', async () => {
    const saved = process.env.SSHD_BIN;
    process.env.SSHD_BIN = '/nonexistent/sshd';
    try {
      const err = await Sshd.start().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(BinaryMissingError);
      expect(String(err)).toMatch(/scripts\/setup/);
    } finally {
      if (saved === undefined) delete process.env.SSHD_BIN;
      else process.env.SSHD_BIN = saved;
    }
  });

  it('on dispose removes only its own key line and its temp dir', async () => {
    const keys = join(sshd.user('cpuser').home, '.ssh', 'authorized_keys');
    const other = await Sshd.start();
    const ours = other.user('cpuser').publicKey;
    const dir = other.configPath.replace(/\/sshd_config$/, '');
    expect(readFileSync(keys, 'utf8')).toContain(ours);
    expect((await other.ssh('true')).code).toBe(0);
    const pid = other.pid;
    await other[Symbol.asyncDispose]();
    const after = readFileSync(keys, 'utf8');
    expect(after).not.toContain(ours);
    expect(after).toContain(sshd.user('cpuser').publicKey);
    expect(existsSync(dir)).toBe(false);
    expect(
      existsSync(`/proc/${pid}/cmdline`) &&
        readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('sshd'),
    ).toBe(false);
    expect((await sshd.ssh('true')).code).toBe(0);
  });
});
