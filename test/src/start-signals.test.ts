import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ManagedProcess, NatsServer } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { haEnv } from './ha-stack.js';
import { type ServiceName, Stack } from './stack.js';

const root = fileURLToPath(new URL('../../', import.meta.url));

/**
 * A SIGTERM while a service starts (a systemd restart, Ctrl-C on `up`): each of the four
 * services, a real process, logs that it stopped while starting, closes what it had opened and
 * exits 0 (bus lifecycle.ts startService), where it used to die silently with nothing drained.
 */
describe('a service stopped while it starts (real processes, real nats-server)', () => {
  let stack: Stack;
  let nats: NatsServer;

  beforeAll(async () => {
    stack = await Stack.start('startsig');
    if (!(stack.nats instanceof NatsServer)) throw new Error('expected one nats-server');
    nats = stack.nats;
  }, 120_000);
  afterAll(async () => {
    await stack?.[Symbol.asyncDispose]();
  });

  /** SIGTERM, then its exit code (null: it had to be killed 30 s later) and what it logged. */
  const terminate = async (proc: ManagedProcess) => {
    const code = await proc.stop(30_000);
    const lines = proc.output
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { level: number; msg: string });
    return { code, messages: lines.map((l) => l.msg), levels: lines.map((l) => l.level) };
  };

  const services: [ServiceName, () => Record<string, string>][] = [
    ['majordomo', () => ({})],
    ['chef', () => ({ CP_CHEF: 'text', CP_CHEF_DEFINITION: stack.writeUpperChef() })],
    ['runner', () => ({})],
    ['fswatcher', () => ({})],
  ];

  it.each(services)(
    '%s: a SIGTERM while it waits to connect stops it, exit 0, "stopped while starting"',
    async (kind, extra) => {
      // A server that accepts the connection and then says nothing (paused): the service waits
      // in Bus.connect, trying again, and says so; that first line is the moment to stop it.
      const pid = nats.pid;
      if (pid === undefined) throw new Error('nats-server has no pid');
      process.kill(pid, 'SIGSTOP');
      try {
        const proc = await stack.spawn(kind, extra(), `${kind}-connecting`);
        await proc.waitForOutput(/\n/, 60_000);
        const { code, messages, levels } = await terminate(proc);
        expect(code, proc.tail()).toBe(0);
        expect(messages).toContain('stopping while starting: the start is abandoned');
        expect(messages.at(-1)).toBe('stopped while starting');
        expect(Math.max(...levels), proc.tail()).toBeLessThan(50); // no error, no fatal
      } finally {
        process.kill(pid, 'SIGCONT');
      }
    },
    90_000,
  );

  it('inotify2nats: a SIGTERM while it waits to connect stops it, exit 0, "stopped while starting"', async () => {
    const pid = nats.pid;
    if (pid === undefined) throw new Error('nats-server has no pid');
    const watched = stack.dir.join('i2n-root');
    mkdirSync(watched, { recursive: true });
    const key = stack.dir.join('i2n-key');
    writeFileSync(key, 'not used: the pod is reached only after NATS\n', { mode: 0o600 });
    const credsFile = await stack.creds({ role: 'inotify2nats', scope: 'laptop' });
    process.kill(pid, 'SIGSTOP');
    try {
      const proc = new ManagedProcess({
        name: 'inotify2nats-connecting',
        command: process.execPath,
        args: [
          `${root}apps/inotify2nats/bin/inotify2nats.js`,
          ...['--project', stack.project, '--pod', 'laptop', '--root', watched],
          ...['--ssh', 'cp@127.0.0.1:1', '--key', key, '--remote-root', 'ws'],
          ...['--nats', nats.url, '--creds', credsFile],
          ...['--state-dir', stack.dir.join('i2n-state')],
        ],
        env: { ...process.env, CP_LOG_FORMAT: 'json', HOME: stack.dir.join('i2n-home') },
        cwd: root,
      });
      stack.procs.set('inotify2nats-connecting', proc);
      await proc.waitForOutput(/\n/, 60_000);
      const { code, messages, levels } = await terminate(proc);
      expect(code, proc.tail()).toBe(0);
      expect(messages).toContain('stopping while starting: the start is abandoned');
      expect(messages.at(-1)).toBe('stopped while starting');
      expect(Math.max(...levels), proc.tail()).toBeLessThan(50);
    } finally {
      process.kill(pid, 'SIGCONT');
    }
  }, 90_000);

  it('majordomo: a SIGTERM while it stands by (connected, waiting for the lease) stops it, exit 0', async () => {
    await stack.start('majordomo', haEnv('md-a'), 'md-a');
    const standby = await stack.spawn('majordomo', haEnv('md-b'), 'md-b');
    await standby.waitForOutput(/"msg":"standby: md-a leads/, 60_000);
    const { code, messages, levels } = await terminate(standby);
    expect(code, standby.tail()).toBe(0);
    expect(messages).toContain('stopping while starting: the start is abandoned');
    expect(messages.at(-1)).toBe('stopped while starting');
    expect(Math.max(...levels), standby.tail()).toBeLessThan(50);
    // It had not taken the lease: the leader still leads, and was not disturbed.
    expect(messages).not.toContain('leader: restoring from KV');
    expect(stack.procs.get('md-a')?.running).toBe(true);
  }, 120_000);
});
