import { chmodSync, existsSync, readFileSync } from 'node:fs';
import { reservePort, Sshd, TempDir, until as waitUntil } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TransportError } from './errors.js';
import { OpenThrottle } from './open-throttle.js';
import { SshPool } from './ssh-pool.js';
import { endpointOf, type SshTarget } from './target.js';

// The server goes away under a pool with open connections: stopped and restarted on the same
// port (an outage), one connection killed on the server side, or nothing listening at all.
// Commands that had not started are retried and run exactly once; commands cut off mid-run
// fail (they may have partly run) and are never run again by the pool.
describe('SshPool when the server drops and comes back', { timeout: 60_000 }, () => {
  let sshd: Sshd;
  let target: SshTarget;
  const dir = new TempDir('cp-transport-outage-');
  beforeAll(async () => {
    chmodSync(dir.path, 0o1777);
    sshd = await Sshd.start();
    target = sshd.target();
  });
  afterAll(async () => {
    await sshd?.[Symbol.asyncDispose]();
    dir[Symbol.dispose]();
  });

  const until = (cond: () => boolean, what: string) => waitUntil(cond, what, 30_000);

  const lines = (path: string) =>
    existsSync(path) ? readFileSync(path, 'utf8').split('\n').filter(Boolean) : [];

  /**
   * Every pass through the pool's open throttle, in call order: when it was asked (`asked`) and
   * when it let the attempt go (`went`), on the throttle's own clock (Date.now()). Whether an
   * attempt had to wait (stats.throttledOpens) depends on how long the failed connect and the
   * backoff before it took, which load stretches. The throttle's promise does not: each open it
   * lets go comes at least minOpenIntervalMs after the slot of the one asked before it, and that
   * slot is no earlier than when that one asked. So `went[i + 1] - asked[i] >= interval` holds
   * however slow the machine is (less 1 ms: Date.now() and the timers round to the ms apart).
   */
  const recordOpens = () => {
    const wait = OpenThrottle.prototype.wait;
    const calls: Array<{ asked: number; went?: number }> = [];
    OpenThrottle.prototype.wait = async function (this: OpenThrottle, host: string) {
      const call: { asked: number; went?: number } = { asked: Date.now() };
      calls.push(call);
      const waited = await wait.call(this, host);
      call.went = Date.now();
      return waited;
    };
    return {
      calls,
      /** The calls the throttle has let go (it lets them go in call order). */
      gone: () => calls.filter((c) => c.went !== undefined),
      /** For each open let go after the first: from when the one before it asked until it went. */
      spacing: () =>
        calls.slice(1).flatMap((c, i) => {
          const before = calls[i];
          return c.went === undefined || before === undefined ? [] : [c.went - before.asked];
        }),
      [Symbol.dispose]: () => {
        OpenThrottle.prototype.wait = wait;
      },
    };
  };

  it('retries commands issued during an outage, throttled, and runs each once after the restart', async () => {
    const ran = dir.join('ran-outage');
    const cut = dir.join('cut-off');
    using opens = recordOpens();
    await using pool = new SshPool({
      minOpenIntervalMs: 300,
      connectRetries: 40,
      retryBaseMs: 20,
      retryMaxMs: 50,
    });
    await pool.exec(target, 'true');
    expect(pool.stats().activeConnections).toBe(1);
    const inFlight = pool.exec(target, `echo start >> ${cut}; exec sleep 30`).catch((e) => e);
    await until(() => lines(cut).length === 1, 'the long command to start');

    await sshd.stop();
    const cutErr = await inFlight;
    expect(cutErr).toBeInstanceOf(TransportError);
    expect(cutErr).toMatchObject({
      code: 'TRANSPORT_CONNECTION_LOST',
      endpoint: endpointOf(target),
    });
    expect(cutErr.message).toContain(endpointOf(target));

    const commands = Array.from({ length: 14 }, (_, i) =>
      pool.exec(target, `echo ${i} >> ${ran}; echo ${i}`),
    );
    await until(() => pool.stats().connectFailures >= 3, 'connect attempts against the dead port');
    expect(lines(ran)).toEqual([]);
    await sshd.start();

    const results = await Promise.all(commands);
    expect(results.map((r) => r.stdout)).toEqual(Array.from({ length: 14 }, (_, i) => `${i}\n`));
    expect(
      lines(ran)
        .map(Number)
        .sort((a, b) => a - b),
    ).toEqual(Array.from({ length: 14 }, (_, i) => i));
    // the command cut off by the outage was not run again
    expect(lines(cut)).toEqual(['start']);
    const s = pool.stats();
    // every attempt went through the throttle, and retries never outpaced it
    // (a second opener may still be waiting for its turn: it has made no attempt yet)
    expect(opens.gone().length).toBeGreaterThanOrEqual(s.connectFailures + s.connectionsOpened);
    for (const gap of opens.spacing()) expect(gap).toBeGreaterThanOrEqual(300 - 1);
    expect(s.connectionsOpened).toBeGreaterThanOrEqual(2);
    expect(s.connectionsOpened).toBeLessThanOrEqual(3);
    expect(s.activeChannels).toBe(0);
  });

  it('names the host when it stays down past the retries, and recovers once it is back', async () => {
    const ran = dir.join('ran-down');
    using opens = recordOpens();
    // The backoff (10 to 20 ms) is far shorter than the throttle's interval: the throttle alone
    // spaces the retries.
    await using pool = new SshPool({
      minOpenIntervalMs: 100,
      connectRetries: 3,
      retryBaseMs: 10,
      retryMaxMs: 20,
    });
    await pool.exec(target, 'true');
    await sshd.stop();
    try {
      const errs = await Promise.all(
        Array.from({ length: 3 }, () => pool.exec(target, `echo x >> ${ran}`).catch((e) => e)),
      );
      for (const err of errs) {
        expect(err).toBeInstanceOf(TransportError);
        expect(err).toMatchObject({ code: 'TRANSPORT_CONNECTION_REFUSED', retryable: true });
        expect(err.message).toContain(endpointOf(target));
        expect(err.message).toMatch(/gave up after 4 attempts/);
      }
      // the first open, then the 4 attempts against the dead port, each throttled
      expect(pool.stats()).toMatchObject({ connectionsOpened: 1, connectFailures: 4 });
      expect(opens.gone()).toHaveLength(5);
      for (const gap of opens.spacing()) expect(gap).toBeGreaterThanOrEqual(100 - 1);
    } finally {
      await sshd.start();
    }
    expect(lines(ran)).toEqual([]);
    expect((await pool.exec(target, 'echo back')).stdout).toBe('back\n');
  });

  it('replaces a connection killed on the server side, running every later command once', async () => {
    const ran = dir.join('ran-kill');
    await using pool = new SshPool({ minOpenIntervalMs: 100, maxConnectionsPerHost: 1 });
    const { stdout } = await pool.exec(target, 'echo $PPID');
    const sessionPid = Number(stdout.trim());
    expect(sshd.sessions()).toHaveLength(1);
    const started = dir.join('started-kill');
    const inFlight = pool.exec(target, `echo start >> ${started}; exec sleep 30`).catch((e) => e);
    await until(() => lines(started).length === 1, 'the long command to start');

    await sshd.killSession(sessionPid);
    // issued at once: some may meet the dying connection before the pool has seen it go
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) => pool.exec(target, `echo ${i} >> ${ran}; echo ${i}`)),
    );
    expect(results.map((r) => r.stdout)).toEqual(Array.from({ length: 8 }, (_, i) => `${i}\n`));
    expect(
      lines(ran)
        .map(Number)
        .sort((a, b) => a - b),
    ).toEqual(Array.from({ length: 8 }, (_, i) => i));
    expect(await inFlight).toMatchObject({ code: 'TRANSPORT_CONNECTION_LOST' });
    expect(lines(started)).toEqual(['start']);
    const s = pool.stats();
    expect(s).toMatchObject({ connectionsOpened: 2, connectionsClosed: 1, activeConnections: 1 });
    expect(sshd.sessions()).toHaveLength(1);
  });

  it('retries on a new connection a command whose channel was opening when the server dropped it', async () => {
    const ran = dir.join('ran-opening');
    await using pool = new SshPool({ minOpenIntervalMs: 0, maxConnectionsPerHost: 1 });
    const sessionPid = Number((await pool.exec(target, 'echo $PPID')).stdout.trim());
    // Frozen, the server side of this connection answers no channel open.
    const frozen = [...sshd.sessions(), sessionPid];
    for (const pid of frozen) process.kill(pid, 'SIGSTOP');
    const pending = pool.exec(target, `echo once >> ${ran}; echo ok`);
    await until(() => pool.stats().activeChannels === 1, 'the channel open to be under way');
    await sshd.killSession(sessionPid);
    expect((await pending).stdout).toBe('ok\n');
    expect(lines(ran)).toEqual(['once']);
    expect(pool.stats()).toMatchObject({ connectionsOpened: 2, channelRetries: 1 });
  });

  it('names a dead host (nothing listening) in the error', async () => {
    // Reserved: no other test file's server can be listening there meanwhile.
    using closed = reservePort();
    const port = closed.port;
    const dead = { ...target, port };
    await using pool = new SshPool({ minOpenIntervalMs: 0, connectRetries: 1, retryBaseMs: 10 });
    const err = await pool.exec(dead, 'true').catch((e) => e);
    expect(err).toBeInstanceOf(TransportError);
    expect(err).toMatchObject({
      code: 'TRANSPORT_CONNECTION_REFUSED',
      endpoint: `${target.username}@127.0.0.1:${port}`,
    });
    expect(err.message).toContain(`${target.username}@127.0.0.1:${port}`);
    expect(err.message).toMatch(/is sshd running/);
  });
});
