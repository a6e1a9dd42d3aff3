import { writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { reservePort, Sshd, TempDir } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HostKeyError, TransportError } from './errors.js';
import { SshPool } from './ssh-pool.js';
import type { SshTarget } from './target.js';

describe('SshPool against a real sshd', () => {
  let sshd: Sshd;
  let target: SshTarget;
  const dir = new TempDir('cp-transport-pool-');
  beforeAll(async () => {
    sshd = await Sshd.start({ users: ['cpuser', 'cpuser2'] });
    target = sshd.target('cpuser');
  });
  afterAll(async () => {
    await sshd?.[Symbol.asyncDispose]();
    dir[Symbol.dispose]();
  });

  it('runs 50 commands over one connection', async () => {
    await using pool = new SshPool({ minOpenIntervalMs: 0 });
    for (let i = 0; i < 50; i++) {
      const res = await pool.exec(target, `echo ${i}`);
      expect(res).toMatchObject({ code: 0, stdout: `${i}\n`, stderr: '' });
    }
    const s = pool.stats();
    expect(s.connectionsOpened).toBe(1);
    expect(s.channelsOpened).toBe(50);
    expect(s.reused).toBe(49);
    expect(s.activeChannels).toBe(0);
  });

  it('reports exit codes, stderr and stdin', async () => {
    await using pool = new SshPool({ minOpenIntervalMs: 0 });
    const res = await pool.exec(target, 'cat; echo oops >&2; exit 3', { stdin: 'in put\n' });
    expect(res).toMatchObject({ code: 3, stdout: 'in put\n', stderr: 'oops\n' });
    expect((await pool.exec(target, 'id -un')).stdout).toBe('cpuser\n');
  });

  it('keeps at most channelsPerConnection channels per connection under 30 concurrent execs', async () => {
    await using pool = new SshPool({
      minOpenIntervalMs: 0,
      channelsPerConnection: 10,
      maxConnectionsPerHost: 2,
    });
    const results = await Promise.all(
      Array.from({ length: 30 }, (_, i) => pool.exec(target, `sleep 0.3; echo ${i}`)),
    );
    expect(results.map((r) => r.stdout)).toEqual(Array.from({ length: 30 }, (_, i) => `${i}\n`));
    const s = pool.stats();
    expect(s.peakChannelsPerConnection).toBe(10);
    expect(s.connectionsOpened).toBe(2);
    expect(s.queuedRequests).toBeGreaterThan(0);
    expect(s.channelsOpened).toBe(30 + s.channelRetries);
  });

  it('queues beyond one connection when maxConnectionsPerHost is 1', async () => {
    await using pool = new SshPool({
      minOpenIntervalMs: 0,
      channelsPerConnection: 4,
      maxConnectionsPerHost: 1,
    });
    await pool.exec(target, 'true');
    await Promise.all(Array.from({ length: 12 }, () => pool.exec(target, 'sleep 0.2')));
    const s = pool.stats();
    expect(s.connectionsOpened).toBe(1);
    expect(s.peakChannelsPerConnection).toBe(4);
    expect(s.peakQueued).toBe(8);
  });

  it('rotates a connection past maxConnectionAgeMs', async () => {
    await using pool = new SshPool({ minOpenIntervalMs: 0, maxConnectionAgeMs: 300 });
    await pool.exec(target, 'true');
    await sleep(400);
    await pool.exec(target, 'true');
    const s = pool.stats();
    expect(s.connectionsOpened).toBe(2);
    // The first, past its age, was rotated out and closed. The second goes too when its own
    // exec (channel open to close) took 300 ms or more, as under heavy load: a rotation again.
    expect(s.connectionsClosed).toBeGreaterThanOrEqual(1);
    expect(s.rotations).toBe(s.connectionsClosed);
    expect(s.activeConnections).toBe(2 - s.connectionsClosed);
  });

  it('lets a rotated connection finish its running command before closing it', async () => {
    await using pool = new SshPool({ minOpenIntervalMs: 0, maxConnectionAgeMs: 200 });
    const long = pool.exec(target, 'sleep 1; echo done');
    while (pool.stats().activeChannels === 0) await sleep(10);
    await sleep(300);
    const short = await pool.exec(target, 'echo new');
    expect(short.stdout).toBe('new\n');
    expect((await long).stdout).toBe('done\n');
    expect(pool.stats().connectionsOpened).toBe(2);
  });

  it('closes connections idle longer than maxIdleMs', async () => {
    await using pool = new SshPool({ minOpenIntervalMs: 0, maxIdleMs: 100 });
    await pool.exec(target, 'true');
    await sleep(400);
    expect(pool.stats()).toMatchObject({ idleClosed: 1, activeConnections: 0 });
    await pool.exec(target, 'true');
    expect(pool.stats().connectionsOpened).toBe(2);
  });

  it('spaces connection opens to one host by minOpenIntervalMs', async () => {
    await using pool = new SshPool({ minOpenIntervalMs: 150 });
    await Promise.all([
      pool.exec(sshd.target('cpuser'), 'true'),
      pool.exec(sshd.target('cpuser2'), 'true'),
      pool.exec({ ...sshd.target('cpuser'), port: sshd.port }, 'true'),
    ]);
    // two distinct targets on one host: the second open had to wait; the third request
    // is the first target again and rides its connection
    expect(pool.stats()).toMatchObject({ connectionsOpened: 2, throttledOpens: 1 });
  });

  it('refuses a host key that does not match known_hosts, naming host and file', async () => {
    const known = `${dir.path}/known_hosts_wrong`;
    writeFileSync(
      known,
      `[127.0.0.1]:${sshd.port} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n`,
    );
    await using pool = new SshPool({ minOpenIntervalMs: 0 });
    const err = await pool.exec({ ...target, knownHostsPath: known }, 'true').catch((e) => e);
    expect(err).toBeInstanceOf(HostKeyError);
    expect(err).toMatchObject({ code: 'TRANSPORT_HOST_KEY_MISMATCH', retryable: false });
    expect(err.message).toContain(`[127.0.0.1]:${sshd.port}`);
    expect(err.message).toContain(known);
    expect(pool.stats().connectFailures).toBe(1);
  });

  it('refuses an unknown host key', async () => {
    const known = `${dir.path}/known_hosts_other`;
    writeFileSync(known, `[127.0.0.1]:1 ${sshd.hostPublicKey}\n`);
    await using pool = new SshPool({ minOpenIntervalMs: 0 });
    const err = await pool.exec({ ...target, knownHostsPath: known }, 'true').catch((e) => e);
    expect(err).toBeInstanceOf(HostKeyError);
    expect(err).toMatchObject({ code: 'TRANSPORT_HOST_KEY_UNKNOWN', retryable: false });
    expect(err.message).toContain(known);
    const missing = await pool
      .exec({ ...target, knownHostsPath: `${dir.path}/nope` }, 'true')
      .catch((e) => e);
    expect(missing).toMatchObject({ code: 'TRANSPORT_HOST_KEY_UNKNOWN' });
  });

  it('accepts a hashed known_hosts entry for the right key', async () => {
    const known = `${dir.path}/known_hosts_hashed`;
    writeFileSync(known, `[127.0.0.1]:${sshd.port} ${sshd.hostPublicKey}\n`);
    const { runCommand } = await import('@computepods/testkit');
    const res = await runCommand('ssh-keygen', ['-H', '-f', known]);
    expect(res.code, res.stderr).toBe(0);
    await using pool = new SshPool({ minOpenIntervalMs: 0 });
    expect((await pool.exec({ ...target, knownHostsPath: known }, 'echo ok')).stdout).toBe('ok\n');
  });

  it('fails authentication with a key the user does not accept, without retrying', async () => {
    await using pool = new SshPool({ minOpenIntervalMs: 0, connectRetries: 3 });
    const wrongKey = { ...target, privateKeyPath: sshd.user('cpuser2').privateKeyPath };
    const err = await pool.exec(wrongKey, 'true').catch((e) => e);
    expect(err).toMatchObject({ code: 'TRANSPORT_AUTH_FAILED', retryable: false });
    expect(pool.stats().connectFailures).toBe(1);
  });

  it('fails fast with a retryable error on a closed port, after its retries', async () => {
    // Reserved: no other test file's server can be listening there meanwhile.
    using closed = reservePort();
    const port = closed.port;
    await using pool = new SshPool({ minOpenIntervalMs: 0, connectRetries: 2, retryBaseMs: 10 });
    const err = await pool.exec({ ...target, port }, 'true').catch((e) => e);
    expect(err).toBeInstanceOf(TransportError);
    expect(err).toMatchObject({ code: 'TRANSPORT_CONNECTION_REFUSED', retryable: true });
    expect(err.message).toMatch(/3 attempts/);
    expect(pool.stats().connectFailures).toBe(3);
  });

  it('gives up on a host that accepts TCP but never speaks SSH (connect timeout)', async () => {
    const sockets: Socket[] = [];
    const silent: Server = createServer((s) => sockets.push(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const port = (silent.address() as { port: number }).port;
    try {
      await using pool = new SshPool({
        minOpenIntervalMs: 0,
        connectTimeoutMs: 300,
        connectRetries: 0,
      });
      const err = await pool.exec({ ...target, port }, 'true').catch((e) => e);
      expect(err).toMatchObject({ code: 'TRANSPORT_CONNECT_TIMEOUT', retryable: true });
    } finally {
      for (const s of sockets) s.destroy();
      silent.close();
    }
  });

  it('kills a command that runs past timeoutMs and keeps the connection usable', async () => {
    await using pool = new SshPool({ minOpenIntervalMs: 0 });
    const err = await pool.exec(target, 'sleep 30; echo late', { timeoutMs: 200 }).catch((e) => e);
    expect(err).toMatchObject({ code: 'TRANSPORT_COMMAND_TIMEOUT', retryable: false });
    // the remote process group got SIGKILL, so the slot frees without waiting 30 s
    while (pool.stats().activeChannels > 0) await sleep(20);
    expect((await pool.exec(target, 'echo after')).stdout).toBe('after\n');
    expect(pool.stats().connectionsOpened).toBe(1);
  });

  it('recovers when the server drops the connection between commands', async () => {
    await using pool = new SshPool({ minOpenIntervalMs: 0 });
    // kill this session's sshd child (our own connection), as a server restart would
    await pool.exec(target, 'kill -9 $PPID').catch(() => undefined);
    await sleep(200);
    expect((await pool.exec(target, 'echo back')).stdout).toBe('back\n');
    expect(pool.stats().connectionsOpened).toBe(2);
  });

  it('fails requests after close', async () => {
    const pool = new SshPool({ minOpenIntervalMs: 0 });
    await pool.exec(target, 'true');
    await pool.close();
    expect(pool.stats().activeConnections).toBe(0);
    await expect(pool.exec(target, 'true')).rejects.toMatchObject({
      code: 'TRANSPORT_POOL_CLOSED',
    });
  });
});
