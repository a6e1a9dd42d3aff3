import { createHash } from 'node:crypto';
import { Bus, createLogger, thenClose } from '@computepods/bus';
import { type BuildRequested, StatusRequest, subjects } from '@computepods/protocol';
import { defined, NatsServer, untilDefined } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { majorDomoConfig } from './config.js';
import { MajorDomo } from './majordomo.js';
import { playChef } from './test-chef.js';

const P = 'idle';
const POD = 'pod-a';
const sha = (s: string) => createHash('sha256').update(s).digest('hex');

/**
 * "idle" is what tests and `cpctrl build` wait for before they read artefact records. MajorDomo
 * applies a build result in steps (the graph first, then the records in KV); a status asked in
 * between said idle while the records still had the state before the result (seen in the e2e
 * cycle test under load: c/x.a read as stale after MajorDomo had reported the cycle as not
 * converging). Here one record write is held back, so the in-between is there every time.
 */
describe('MajorDomo status while it applies a result', () => {
  let nats: NatsServer;
  let bus: Bus;
  let md: { md: MajorDomo; stop: () => Promise<void> } | undefined;
  const requests: BuildRequested[] = [];

  const connect = (service: string) => {
    const logger = createLogger(service);
    logger.level = 'silent';
    return Bus.connect({ servers: nats.url, service, project: P, logger, discoverable: false });
  };

  beforeAll(async () => {
    nats = await NatsServer.start();
    bus = await connect('test');
    await playChef(bus, P, POD, requests);
    const mdBus = await connect('majordomo');
    const running = await MajorDomo.start(mdBus, majorDomoConfig({ CP_PROJECT: P }));
    md = { md: running.md, stop: thenClose(running, mdBus).stop };
  }, 60_000);
  afterAll(async () => {
    await md?.stop();
    await bus?.close();
    await nats?.[Symbol.asyncDispose]();
  });

  it('is not idle until the records of a result are written', async () => {
    const { md: m } = defined(md, 'MajorDomo');
    await bus.publish(
      'files.changed',
      subjects.filesChanged(P, POD),
      {
        pod: POD,
        events: [{ kind: 'changed', path: 'src/a.txt', size: 3, mtimeNs: '1', sha256: sha('abc') }],
      },
      { msgId: 'files-1' },
    );
    const req = await untilDefined('the request', () => requests[0]);

    // Hold back the write that records the output as up to date.
    const { dm, artefacts } = m.inspect();
    const status = () => m.queries.status(StatusRequest.parse({}));
    const update = artefacts.update.bind(artefacts);
    let release!: () => void;
    const held = new Promise<void>((r) => {
      release = r;
    });
    let holding = false;
    artefacts.update = async (path, change, cid) => {
      if (path === 'out/a.up' && change.status === 'up_to_date') {
        holding = true;
        await held;
      }
      return update(path, change, cid);
    };
    try {
      await bus.publish('build.result', subjects.buildResult(P), {
        buildId: req.buildId,
        taskId: req.taskId,
        chef: 'gen',
        pod: POD,
        status: 'succeeded',
        outputs: { 'out/a.up': { sha256: sha('ABC'), size: 3, mtimeNs: '2' } },
        cutoff: { 'out/a.up': sha('ABC') },
        durationMs: 1,
      });
      await untilDefined('the record write to start', () => (holding ? true : undefined));
      // The graph has the result (nothing runs, nothing is ready); the record is not written.
      expect(dm.status().idle).toBe(true);
      expect(artefacts.get('out/a.up')?.status).not.toBe('up_to_date');
      expect(status().idle).toBe(false);
    } finally {
      // Also when an expectation failed: MajorDomo's stop() waits for the held write.
      release();
    }
    await untilDefined('idle', () => (status().idle ? true : undefined));
    expect(artefacts.get('out/a.up')?.status).toBe('up_to_date');
  });
});
