import { Bus, quietLogger } from '@computepods/bus';
import { streams } from '@computepods/protocol';
import { makeTestCa, makeTestCertificate, NatsServer, TempDir } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuthStore, provisionProject, provisionRegistry, serverConfigLines } from './index.js';

/** A CA and a server certificate for 127.0.0.1 (the test kit's, made with Debian's openssl). */
function makeCerts(dir: TempDir): { ca: string; cert: string; key: string } {
  const ca = makeTestCa(dir.path, 'cp-test-ca');
  return { ca: ca.ca, ...makeTestCertificate(ca, dir.path, '127.0.0.1') };
}

/**
 * A deployment that leaves loopback: operator mode plus TLS on the client port. A client that
 * cannot verify the server's certificate does not connect; one given the CA does, with its
 * role's credentials, through the same Bus.connect the services use (NATS_CA).
 */
describe('TLS on the client port, with operator mode', () => {
  const dir = new TempDir('cp-tls-');
  let store: AuthStore;
  let nats: NatsServer;
  let certs: ReturnType<typeof makeCerts>;
  const logger = quietLogger('tls-test');

  beforeAll(async () => {
    certs = makeCerts(dir);
    store = await AuthStore.open(dir.join('auth'));
    nats = await NatsServer.start({
      configLines: () => [
        ...serverConfigLines(store, dir.join('resolver')),
        `tls { cert_file: ${JSON.stringify(certs.cert)}, key_file: ${JSON.stringify(certs.key)} }`,
      ],
    });
  }, 60_000);

  afterAll(async () => {
    await nats?.[Symbol.asyncDispose]();
    dir[Symbol.dispose]();
  });

  it('connects only with the CA that signed the server, and then as the role allows', async () => {
    const without = await Bus.connect({
      servers: nats.url,
      service: 'x',
      project: 'alpha',
      logger,
      credsFile: await store.systemCreds(),
      giveUpAfterMs: 1_000,
    }).then(
      () => undefined,
      (err: Error) => err,
    );
    expect(without).toBeInstanceOf(Error);
    // Provisioning and the services go through TLS once given the CA (NATS_CA in production).
    process.env.NATS_CA = certs.ca;
    try {
      await provisionRegistry(store, nats.url);
      const creds = await provisionProject({ store, servers: nats.url, project: 'alpha' });
      const admin = await Bus.connect({
        servers: nats.url,
        credsFile: creds,
        service: 'x',
        project: 'alpha',
        logger,
      });
      expect((await admin.jsm.streams.info(streams.files('alpha'))).config.name).toBe(
        'cp_alpha_files',
      );
      expect(admin.nc.info?.tls_required).toBe(true);
      await admin.close();
    } finally {
      delete process.env.NATS_CA;
    }
  });
});
