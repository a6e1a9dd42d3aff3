import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defined } from './defined.js';
import { BinaryMissingError } from './errors.js';
import { ManagedProcess } from './process.js';
import { ephemeralRange, tryReserve } from './reserved-port.js';
import { runCommand } from './run-command.js';
import { Sshd } from './sshd.js';

function sshArgs(server: Sshd, command: string): string[] {
  return [
    ...['-p', String(server.port), '-i', server.privateKeyPath],
    ...['-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes', '-o', 'StrictHostKeyChecking=yes'],
    ...['-o', `UserKnownHostsFile=${server.knownHostsPath}`, '-o', 'LogLevel=ERROR'],
    `${server.username}@${server.host}`,
    command,
  ];
}

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

  it('stops and starts again on the same port, host key and users', async () => {
    await using other = await Sshd.start({ users: ['cpuser', 'cpuser2'] });
    const port = other.port;
    const known = readFileSync(other.knownHostsPath, 'utf8');
    const oldPid = other.pid;
    await other.stop();
    expect(other.running).toBe(false);
    // Its port stays its own while it is down: reserved, and outside the range the kernel hands
    // out to every other test file's bind(0) and outgoing connections.
    const [lo, hi] = ephemeralRange();
    expect(port < lo || port > hi).toBe(true);
    expect(tryReserve(port)).toBeUndefined();
    const down = await other.ssh('true');
    expect(down.code).toBe(255);
    expect(down.stderr).toMatch(/Connection refused/);
    await other.start();
    expect(other.running).toBe(true);
    expect(other.pid).not.toBe(oldPid);
    expect(other.port).toBe(port);
    expect(readFileSync(other.knownHostsPath, 'utf8')).toBe(known);
    expect((await other.ssh('id -un', { user: 'cpuser2' })).stdout).toBe('cpuser2\n');
  });

  it('gives its reserved port back when disposed', async () => {
    const other = await Sshd.start();
    const port = other.port;
    await other[Symbol.asyncDispose]();
    const again = defined(tryReserve(port), `port ${port} reserved again`);
    again.release();
  });

  it('lists its sessions and kills one by a pid inside it, leaving the others', async () => {
    await using other = await Sshd.start();
    expect(other.sessions()).toEqual([]);
    const a = new ManagedProcess({
      name: 'ssh-a',
      command: 'ssh',
      args: sshArgs(other, 'echo $PPID; exec sleep 60'),
    });
    const b = new ManagedProcess({
      name: 'ssh-b',
      command: 'ssh',
      args: sshArgs(other, 'echo $PPID; exec sleep 60'),
    });
    try {
      const pidA = Number(await a.waitForOutput(/^[0-9]+/m));
      await b.waitForOutput(/^[0-9]+/m);
      expect(other.sessions()).toHaveLength(2);
      await expect(other.killSession(process.pid)).rejects.toThrow(/not a session/);
      await other.killSession(pidA);
      expect(await a.exited()).toBe(255);
      expect(b.running).toBe(true);
      expect(other.sessions()).toHaveLength(1);
      // an outage takes the remaining session down with the listener
      await other.stop();
      expect(await b.exited()).toBe(255);
    } finally {
      await Promise.all([a.stop(), b.stop()]);
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
