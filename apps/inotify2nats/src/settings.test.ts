import { writeFileSync } from 'node:fs';
import { TempDir } from '@computepods/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { buildProgram } from './cli.js';
import { SettingsError } from './errors.js';
import { resolveSettings } from './settings.js';
import { parseSshEndpoint } from './ssh-endpoint.js';

const dir = new TempDir('cp-i2n-settings-');
afterAll(() => dir[Symbol.dispose]());

const required = {
  project: 'demo',
  pod: 'laptop',
  root: '/src',
  ssh: 'cp@pod.example.org:2222',
  remoteRoot: 'workspace',
};

function cliOf(argv: string[]): Record<string, unknown> {
  return buildProgram()
    .exitOverride()
    .parse(['node', 'inotify2nats', ...argv])
    .opts();
}

function resolveWith(cli: Record<string, unknown>, env: NodeJS.ProcessEnv = {}) {
  return resolveSettings({ cli, env, cwd: '/cwd', home: '/home/u' });
}

function errorOf(fn: () => unknown): SettingsError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(SettingsError);
    return err as SettingsError;
  }
  throw new Error('expected a SettingsError');
}

describe('settings', () => {
  it("defaults to cpctrl's current project, as every client does", () => {
    const cfg = dir.join('cpctrl.json');
    writeFileSync(cfg, JSON.stringify({ project: 'thesis' }));
    const { project: _given, ...rest } = required;
    expect(resolveWith(rest, { CPCTRL_CONFIG: cfg }).project).toBe('thesis');
    // A flag or variable still wins over the context.
    expect(resolveWith(rest, { CPCTRL_CONFIG: cfg, CP_PROJECT: 'other' }).project).toBe('other');
    const bad = dir.join('bad-cpctrl.json');
    writeFileSync(bad, JSON.stringify({ project: 'No Such/Name' }));
    expect(errorOf(() => resolveWith(rest, { CPCTRL_CONFIG: bad })).message).toMatch(
      /invalid project \(from the current project in .*bad-cpctrl\.json\)/,
    );
  });

  it('takes a flag over its variable over the config file, and fills defaults', () => {
    const file = dir.join('prec.yaml');
    writeFileSync(
      file,
      [
        'project: fromfile',
        'pod: filepod',
        'root: src',
        'ssh: a@h',
        'remoteRoot: ws',
        'debounceMs: 7',
        "log: ['*.out']",
        'key: ~/k',
      ].join('\n'),
    );
    const s = resolveWith(cliOf(['--config', file, '--project', 'fromflag']), {
      CP_PROJECT: 'fromenv',
      CP_POD: 'envpod',
      CP_DEBOUNCE_MS: '9',
      XDG_STATE_HOME: '/xdg',
    });
    expect(s.project).toBe('fromflag');
    expect(s.pod).toBe('envpod');
    expect(s.debounceMs).toBe(9);
    expect(s.log).toEqual(['*.out']);
    // Relative paths in a file are relative to the file; ~ is the home directory.
    expect(s.root).toBe(dir.join('src'));
    expect(s.key).toBe('/home/u/k');
    expect(s.ssh).toEqual({ username: 'a', host: 'h', port: 22 });
    expect(s.knownHosts).toBe('/home/u/.ssh/known_hosts');
    expect(s.stateDir).toBe('/xdg/computepods/inotify2nats');
    expect(s.nats).toBe('nats://127.0.0.1:4222');
    expect(s.configFile).toBe(file);
  });

  it('repeats --log, splits list variables on commas, and resolves flag paths against the cwd', () => {
    const s = resolveWith(
      cliOf(['--log', '*.log', '--log', 'logs/**', '--root', 'here', ...flags(required, ['root'])]),
      { INOTIFY2NATS_IGNORE: 'a.tmp, b/ ', INOTIFY2NATS_RESYNC: 'yes', INOTIFY2NATS_UPLOADS: '8' },
    );
    expect(s.log).toEqual(['*.log', 'logs/**']);
    expect(s.ignore).toEqual(['a.tmp', 'b/']);
    expect(s.root).toBe('/cwd/here');
    expect(s.resync).toBe(true);
    expect(s.uploads).toBe(8);
  });

  it('reads JSON config files and the config path from INOTIFY2NATS_CONFIG', () => {
    const file = dir.join('c.json');
    writeFileSync(file, JSON.stringify({ ...required, nats: 'nats://n:4222', uploads: 2 }));
    const s = resolveWith({}, { INOTIFY2NATS_CONFIG: file });
    expect(s.nats).toBe('nats://n:4222');
    expect(s.uploads).toBe(2);
    expect(s.ssh.port).toBe(2222);
  });

  it('names the missing setting and every way to give it', () => {
    const err = errorOf(() => resolveWith(cliOf(flags(required, ['ssh']))));
    expect(err.field).toBe('ssh');
    expect(err.message).toMatch(/--ssh .*INOTIFY2NATS_SSH.*config file/);
  });

  it('names the field and the source of a bad value', () => {
    const fromEnv = errorOf(() => resolveWith(cliOf(flags(required)), { CP_DEBOUNCE_MS: 'soon' }));
    expect(fromEnv.field).toBe('debounceMs');
    expect(fromEnv.message).toContain('environment variable CP_DEBOUNCE_MS');

    const file = dir.join('bad.yaml');
    writeFileSync(file, 'retryMaxMs: fast\n');
    const fromFile = errorOf(() => resolveWith(cliOf(['--config', file, ...flags(required)])));
    expect(fromFile.field).toBe('retryMaxMs');
    expect(fromFile.message).toContain(file);

    const badSsh = errorOf(() =>
      resolveWith(cliOf([...flags(required, ['ssh']), '--ssh', 'nohost'])),
    );
    expect(badSsh.field).toBe('ssh');
    expect(badSsh.message).toMatch(/--ssh.*user@host/);

    const badPod = errorOf(() =>
      resolveWith(cliOf([...flags(required, ['pod']), '--pod', 'My.Pod'])),
    );
    expect(badPod.field).toBe('pod');
  });

  it('refuses unknown keys and broken syntax in a config file', () => {
    const file = dir.join('typo.yaml');
    writeFileSync(file, 'project: demo\ndebounce: 5\n');
    const unknown = errorOf(() => resolveWith({ config: file }));
    expect(unknown.field).toBe('debounce');
    expect(unknown.message).toMatch(/unknown setting debounce.*debounceMs/);

    const broken = dir.join('broken.json');
    writeFileSync(broken, '{"project": ');
    expect(errorOf(() => resolveWith({ config: broken })).message).toMatch(/not valid JSON/);
    expect(errorOf(() => resolveWith({ config: dir.join('none.yaml') })).message).toMatch(
      /cannot read config file/,
    );
  });
});

describe('parseSshEndpoint', () => {
  it('reads user@host, a port and bracketed IPv6', () => {
    expect(parseSshEndpoint('cp@pod')).toEqual({ username: 'cp', host: 'pod', port: 22 });
    expect(parseSshEndpoint('cp@10.0.0.2:2222')).toEqual({
      username: 'cp',
      host: '10.0.0.2',
      port: 2222,
    });
    expect(parseSshEndpoint('cp@[::1]:22')).toEqual({ username: 'cp', host: '::1', port: 22 });
  });

  it('refuses what ssh would read differently', () => {
    for (const bad of [
      'pod',
      'cp@',
      '@pod',
      'cp@pod:0',
      'cp@pod:70000',
      '-oProxyCommand=x@pod',
      'cp@po d',
      'a@b@c',
    ])
      expect(() => parseSshEndpoint(bad), bad).toThrow(/SSH endpoint|bad/);
  });
});

/** The required settings as flags, leaving out some. */
function flags(values: Record<string, string>, without: string[] = []): string[] {
  const names: Record<string, string> = { remoteRoot: 'remote-root' };
  return Object.entries(values)
    .filter(([k]) => !without.includes(k))
    .flatMap(([k, v]) => [`--${names[k] ?? k}`, v]);
}
