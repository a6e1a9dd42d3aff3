import { readFile } from 'node:fs/promises';
import { Client } from 'ssh2';
import { classifyConnectError } from './classify.js';
import { HostKeyError, TransportError } from './errors.js';
import {
  entriesFor,
  hostKeyAlgorithmsFor,
  judgeHostKey,
  keyTypeOfBlob,
  knownHostsName,
  readKnownHosts,
} from './known-hosts.js';
import { endpointOf, type SshTarget } from './target.js';

export interface ConnectOptions {
  readonly connectTimeoutMs: number;
  readonly keepaliveMs: number;
  readonly keepaliveCountMax: number;
}

// Host key types ssh2 can verify; offering one it lacks would make connect() throw.
const SSH2_HOST_KEY_TYPES = new Set([
  'ssh-ed25519',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'rsa-sha2-512',
  'rsa-sha2-256',
  'ssh-rsa',
  'ssh-dss',
]);

/**
 * Opens one authenticated ssh2 connection. The host key must be in the target's known_hosts
 * (ssh2 accepts any key unless told otherwise); the whole setup, TCP included, is bounded by
 * connectTimeoutMs, so a dead host fails instead of hanging.
 */
export async function openClient(target: SshTarget, options: ConnectOptions): Promise<Client> {
  const endpoint = endpointOf(target);
  const port = target.port ?? 22;
  let privateKey: Buffer;
  try {
    privateKey = await readFile(target.privateKeyPath);
  } catch (cause) {
    // The key's path is a secret of the profile (never in answers or logs): the message and
    // the error carry only why it could not be read, not where it is.
    const code = (cause as NodeJS.ErrnoException).code ?? 'unreadable';
    throw new TransportError(
      'TRANSPORT_KEY_UNREADABLE',
      `${endpoint}: cannot read the SSH private key (the profile's ssh_key_path): ${code}; check that the file exists and this service's user can read it`,
      { endpoint },
    );
  }
  let forHost: ReturnType<typeof entriesFor>;
  try {
    forHost = entriesFor(readKnownHosts(target.knownHostsPath), target.host, port);
  } catch (cause) {
    throw new HostKeyError(
      'TRANSPORT_HOST_KEY_UNKNOWN',
      `${endpoint}: cannot read known_hosts ${target.knownHostsPath}: ${(cause as Error).message}`,
      target.knownHostsPath,
      { cause, endpoint },
    );
  }
  const algorithms = hostKeyAlgorithmsFor(forHost)?.filter((t) => SSH2_HOST_KEY_TYPES.has(t));
  const name = knownHostsName(target.host, port);

  const client = new Client();
  let rejection: HostKeyError | undefined;
  return new Promise<Client>((resolve, reject) => {
    let settled = false;
    const fail = (err: unknown) => {
      if (settled) return;
      settled = true;
      clearTimeout(hardStop);
      client.destroy();
      reject(rejection ?? classifyConnectError(err, endpoint));
    };
    // ssh2's readyTimeout covers TCP connect and handshake; this is a backstop should a
    // callback never fire. The two errors below are shaped like ssh2's own (a `level`), so that
    // classifyConnectError turns them into TransportErrors as it does ssh2's: none leaves here bare.
    const hardStop = setTimeout(
      () =>
        // biome-ignore lint/plugin: shaped like ssh2's, for classifyConnectError (above)
        fail(Object.assign(new Error('Timed out while connecting'), { level: 'client-timeout' })),
      options.connectTimeoutMs + 2_000,
    );
    client.on('error', fail);
    client.once('close', () =>
      // biome-ignore lint/plugin: shaped like ssh2's, for classifyConnectError (above)
      fail(Object.assign(new Error('connection closed during setup'), { level: 'client-ssh' })),
    );
    client.once('ready', () => {
      if (settled) return;
      settled = true;
      clearTimeout(hardStop);
      client.removeListener('error', fail);
      // Pooled traffic is many small request/response packets; Nagle plus delayed ACKs
      // would add tens of ms to each command (measured: about half the per-command time).
      client.setNoDelay(true);
      resolve(client);
    });
    client.connect({
      host: target.host,
      port,
      username: target.username,
      privateKey,
      readyTimeout: options.connectTimeoutMs,
      keepaliveInterval: options.keepaliveMs,
      keepaliveCountMax: options.keepaliveCountMax,
      ...(algorithms?.length ? { algorithms: { serverHostKey: algorithms as never } } : {}),
      hostVerifier: (key: Buffer): boolean => {
        const verdict = judgeHostKey(forHost, target.host, port, key);
        if (verdict === 'match') return true;
        const type = keyTypeOfBlob(key);
        rejection =
          verdict === 'unknown'
            ? new HostKeyError(
                'TRANSPORT_HOST_KEY_UNKNOWN',
                `${endpoint}: host key for ${name} (${type}) is not in ${target.knownHostsPath}; ` +
                  `verify it out of band and add it, e.g. ssh-keyscan -p ${port} ${target.host} >> ${target.knownHostsPath}`,
                target.knownHostsPath,
                { endpoint },
              )
            : new HostKeyError(
                'TRANSPORT_HOST_KEY_MISMATCH',
                `${endpoint}: host key for ${name} (${type}) does not match ${target.knownHostsPath}` +
                  `${verdict === 'revoked' ? ' (it is marked @revoked)' : ''}; the server was reinstalled or someone is intercepting: ` +
                  'check with its admin before updating known_hosts',
                target.knownHostsPath,
                { endpoint },
              );
        return false;
      },
    });
  });
}
