import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { NatsServer, TempDir } from '@computepods/testkit';
import { credsAuthenticator, type JwtAuth, nkeys } from '@nats-io/transport-node';
import { describe, expect, it } from 'vitest';
import { connectWithBackoff } from './connect.js';
import { NatsAuthError, NatsCredsError } from './errors.js';
import { quietLogger } from './logger.js';
import { credsSigner, seedKey } from './nkey-sign.js';

/** A creds file's text, as nsc and the auth package write it. */
function credsText(jwt: string, seed: string): string {
  return [
    '-----BEGIN NATS USER JWT-----',
    jwt,
    '------END NATS USER JWT------',
    '',
    '************************* IMPORTANT *************************',
    'NKEY Seed printed below can be used to sign and prove identity.',
    '',
    '-----BEGIN USER NKEY SEED-----',
    seed,
    '------END USER NKEY SEED------',
    '',
  ].join('\n');
}

const user = () => {
  const kp = nkeys.createUser();
  return { seed: new TextDecoder().decode(kp.getSeed()), publicKey: kp.getPublicKey() };
};

describe('credsSigner', () => {
  it("answers a nonce as nats.js's credsAuthenticator does, byte for byte", () => {
    for (let i = 0; i < 20; i++) {
      const { seed } = user();
      const creds = new TextEncoder().encode(credsText(`eyJ0eXAi.claims${i}.sig`, seed));
      const nonce = `nonce-${i}-${Math.random().toString(36).slice(2)}`;
      const ours = credsSigner(creds, 'test.creds')(nonce) as JwtAuth;
      const theirs = credsAuthenticator(creds)(nonce) as JwtAuth;
      expect(ours).toEqual(theirs);
      expect(ours.sig).not.toBe('');
    }
  });

  it('refuses a seed whose checksum does not match, and creds without a seed', () => {
    const { seed } = user();
    const flipped = `${seed.slice(0, 10)}${seed[10] === 'A' ? 'B' : 'A'}${seed.slice(11)}`;
    expect(() => seedKey(flipped, 'f.creds')).toThrow(
      /f.creds: its seed does not match its checksum/,
    );
    expect(() => seedKey(nkeys.createUser().getPublicKey(), 'p.creds')).toThrow(
      /is not an nkey seed/,
    );
    const noSeed = new TextEncoder().encode(
      '-----BEGIN NATS USER JWT-----\nabc\n------END NATS USER JWT------\n',
    );
    expect(() => credsSigner(noSeed, 'n.creds')).toThrow(NatsCredsError);
    expect(() => credsSigner(noSeed, 'n.creds')).toThrow(/no NKEY seed block/);
  });

  it('signs in to a real nats-server that knows the user by its public key', async () => {
    using dir = new TempDir('cp-nkey-sign-');
    const allowed = user();
    await using nats = await NatsServer.start({
      configLines: () => [`authorization { users = [ { nkey: ${allowed.publicKey} } ] }`],
    });
    const logger = quietLogger('nkey-sign-test');
    const file = (name: string, seed: string) => {
      const path = join(dir.path, name);
      writeFileSync(path, credsText('eyJ0eXAi.unused.sig', seed));
      return path;
    };
    const nc = await connectWithBackoff({
      servers: nats.url,
      name: 'nkey-sign-test',
      logger,
      credsFile: file('allowed.creds', allowed.seed),
    });
    await nc.flush();
    await nc.close();
    await expect(
      connectWithBackoff({
        servers: nats.url,
        name: 'nkey-sign-test',
        logger,
        credsFile: file('other.creds', user().seed),
      }),
    ).rejects.toBeInstanceOf(NatsAuthError);
  });
});
