import { SettingsError } from './errors.js';

/** Where the pod's sshd listens and whom to log in as. */
export interface SshEndpoint {
  readonly username: string;
  readonly host: string;
  readonly port: number;
}

// POSIX-ish user names; anything else would be a typo or an injection attempt.
const USER = /^[A-Za-z_][A-Za-z0-9._-]{0,31}$/;
const HOST = /^[A-Za-z0-9.-]{1,253}$/;

/** Parses `user@host`, `user@host:port` or `user@[v6addr]:port`; throws a SettingsError saying how to write it. */
export function parseSshEndpoint(spec: string): SshEndpoint {
  const how = 'write it as user@host or user@host:port (IPv6: user@[::1]:2222)';
  const m = /^([^@]+)@(\[[0-9A-Fa-f:.]+\]|[^:@[\]]+)(?::(\d{1,5}))?$/.exec(spec.trim());
  if (!m) throw new SettingsError(`${JSON.stringify(spec)} is not an SSH endpoint; ${how}`);
  const [, username = '', rawHost = '', rawPort] = m;
  if (!USER.test(username))
    throw new SettingsError(`bad user name ${JSON.stringify(username)}; ${how}`);
  const host = rawHost.startsWith('[') ? rawHost.slice(1, -1) : rawHost;
  if (!rawHost.startsWith('[') && !HOST.test(host))
    throw new SettingsError(`bad host ${JSON.stringify(host)}; ${how}`);
  const port = rawPort === undefined ? 22 : Number(rawPort);
  if (!Number.isInteger(port) || port < 1 || port > 65_535)
    throw new SettingsError(`bad port ${rawPort}: use 1 to 65535`);
  return { username, host, port };
}
