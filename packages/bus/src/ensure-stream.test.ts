import { NatsServer } from '@computepods/testkit';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, PermissionViolationError } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProvisioningMissingError } from './errors.js';
import { ensureStream } from './setup.js';

/**
 * ensureStream with least-privilege credentials (a service that may look at its streams but not
 * create them) against a real nats-server: the stream, made beforehand by the admin, is found
 * even when the first looks get no answer (a timeout, JetStream not ready on a cluster node), and
 * only a stream truly missing is said to need provisioning. The refusal to create is the
 * server's answer to such a service, made here on the real manager (no second account needed).
 */
describe('ensureStream as a service that may not create streams', () => {
  let nats: NatsServer;
  const spec = {
    name: 'cp_es_files',
    subjects: ['cp.es.files.>'],
    retention: 'limits' as const,
    replicas: 1,
  };

  beforeAll(async () => {
    nats = await NatsServer.start();
  });
  afterAll(async () => {
    await nats?.[Symbol.asyncDispose]();
  });

  async function serviceManager() {
    const nc = await connect({ servers: nats.url });
    const jsm = await jetstreamManager(nc);
    const refused: string[] = [];
    jsm.streams.add = async (cfg) => {
      refused.push(String(cfg.name));
      throw new PermissionViolationError(
        `Permissions Violation for Publish to "$JS.API.STREAM.CREATE.${cfg.name}"`,
        'publish',
        `$JS.API.STREAM.CREATE.${cfg.name}`,
      );
    };
    return { nc, jsm, refused };
  }

  it('finds the stream after looks that got no answer, and never tries to create it', async () => {
    const admin = await connect({ servers: nats.url });
    await ensureStream(await jetstreamManager(admin), spec);
    await admin.close();
    const { nc, jsm, refused } = await serviceManager();
    const info = jsm.streams.info.bind(jsm.streams);
    let looks = 0;
    jsm.streams.info = async (name, opts) => {
      if (++looks <= 2) throw new Error('TIMEOUT');
      return info(name, opts);
    };
    await ensureStream(jsm, spec);
    expect(looks).toBe(3);
    expect(refused).toEqual([]);
    await nc.close();
  });

  it('finds a stream the admin makes after its first look found none', async () => {
    const { nc, jsm, refused } = await serviceManager();
    const late = { ...spec, name: 'cp_es_late', subjects: ['cp.es.late.>'] };
    const admin = await connect({ servers: nats.url });
    const made = (async () => {
      await new Promise((r) => setTimeout(r, 300));
      await ensureStream(await jetstreamManager(admin), late);
    })();
    await ensureStream(jsm, late);
    await made;
    expect(refused.length).toBeGreaterThan(0);
    expect((await jsm.streams.info('cp_es_late')).config.name).toBe('cp_es_late');
    await admin.close();
    await nc.close();
  }, 30_000);

  it('says provisioning is missing for a stream that is not there', async () => {
    const { nc, jsm, refused } = await serviceManager();
    await expect(
      ensureStream(jsm, { ...spec, name: 'cp_es_absent', subjects: ['cp.es.absent.>'] }),
    ).rejects.toBeInstanceOf(ProvisioningMissingError);
    // Looked for again before being said missing (a cluster node may not know it yet).
    expect(refused).toEqual(Array(6).fill('cp_es_absent'));
    await nc.close();
  }, 30_000);

  it('gives up on a stream it can never get an answer about with that error, not as missing provisioning', async () => {
    const { nc, jsm, refused } = await serviceManager();
    jsm.streams.info = async () => {
      throw new Error('TIMEOUT');
    };
    await expect(ensureStream(jsm, spec)).rejects.toThrow('TIMEOUT');
    expect(refused).toEqual([]);
    await nc.close();
  }, 30_000);
});
