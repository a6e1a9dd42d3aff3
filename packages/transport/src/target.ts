/** Where and as whom to connect. The key is a file: the pool never holds passwords. */
export interface SshTarget {
  readonly host: string;
  readonly port?: number;
  readonly username: string;
  readonly privateKeyPath: string;
  /** OpenSSH known_hosts file holding the server's host key; unknown keys are refused. */
  readonly knownHostsPath: string;
}

/** `user@host:port`, for messages and logs. */
export function endpointOf(target: SshTarget): string {
  return `${target.username}@${target.host}:${target.port ?? 22}`;
}

/** One pool actor per distinct (host, port, user, key, known_hosts). */
export function targetKey(target: SshTarget): string {
  return JSON.stringify([
    target.host,
    target.port ?? 22,
    target.username,
    target.privateKeyPath,
    target.knownHostsPath,
  ]);
}
