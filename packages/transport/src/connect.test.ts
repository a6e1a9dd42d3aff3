import { describe, expect, it } from 'vitest';
import { openClient } from './connect.js';

describe('openClient', () => {
  it("names why the profile's key cannot be read, never where it is (a secret of the profile)", async () => {
    const privateKeyPath = '/srv/keys/lab-SECRET-id_ed25519';
    const err = (await openClient(
      { host: '127.0.0.1', port: 1, username: 'u', privateKeyPath, knownHostsPath: '/nowhere' },
      { connectTimeoutMs: 1_000, keepaliveMs: 1_000, keepaliveCountMax: 1 },
    ).then(
      () => new Error('connected'),
      (e: unknown) => e,
    )) as Error & { code?: string };
    expect(err).toMatchObject({ code: 'TRANSPORT_KEY_UNREADABLE' });
    expect(err.message).toMatch(
      /cannot read the SSH private key \(the profile's ssh_key_path\): ENOENT/,
    );
    expect(
      JSON.stringify({ message: err.message, stack: err.stack, cause: err.cause }),
    ).not.toContain('SECRET');
  });
});
