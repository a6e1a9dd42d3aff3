import { streams, subjects } from '@computepods/protocol';
import { NatsCluster } from '@computepods/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Bus } from './bus.js';
import { quietLogger } from './logger.js';
import { ensureProjectStreams } from './project.js';

/**
 * Bus.publish while its stream's leader is killed -9 (real 3-node cluster, R3 streams): each try
 * waits briefly for its ack and is sent again (bus.ts ACK_WAIT_MS), so one publish may reach the
 * stream more than once; its msgId must keep it one message.
 */
describe('Bus.publish across the loss of its stream leader (real 3-node cluster)', () => {
  let cluster: NatsCluster;
  let bus: Bus;
  const project = 'pubc';
  const logger = quietLogger('publish-cluster-test');

  beforeAll(async () => {
    cluster = await NatsCluster.start();
    bus = await Bus.connect({
      servers: cluster.url,
      tls: { caFile: cluster.caFile },
      service: 'fswatcher',
      project,
      logger,
      discoverable: false,
    });
    await ensureProjectStreams(bus, project, { replicas: 3 });
  }, 120_000);
  afterAll(async () => {
    await bus?.close();
    await cluster?.[Symbol.asyncDispose]();
  });

  const change = (n: number) => ({
    pod: 'pod-a',
    events: [
      {
        kind: 'changed' as const,
        path: `src/f${n}.txt`,
        size: 1,
        mtimeNs: String(n),
        sha256: n.toString(16).padStart(64, '0'),
      },
    ],
  });

  it('stores each of a burst published as the leader dies once, and acknowledges each', async () => {
    const stream = streams.files(project);
    const info = await bus.jsm.streams.info(stream);
    const leader = info.cluster?.leader;
    expect(leader).toMatch(/^cp-nats-\d$/);
    const victim = cluster.node(leader as string);
    const before = info.state.messages;
    const subject = subjects.filesChanged(project, 'pod-a');
    // In flight as the leader dies, and sent while the stream elects another.
    const burst = Array.from({ length: 20 }, (_, n) =>
      bus.publish('files.changed', subject, change(n), { msgId: `burst-${n}` }),
    );
    await victim.kill9();
    const late = Array.from({ length: 20 }, (_, n) =>
      bus.publish('files.changed', subject, change(20 + n), { msgId: `burst-${20 + n}` }),
    );
    try {
      const acks = await Promise.all([...burst, ...late]);
      expect(new Set(acks.map((a) => a.seq)).size).toBe(40);
      const after = await bus.jsm.streams.info(stream);
      expect(after.state.messages - before).toBe(40);
      // Sent again, the same message: acknowledged as the one stored, not stored twice.
      const again = await bus.publish('files.changed', subject, change(0), { msgId: 'burst-0' });
      expect(again.duplicate).toBe(true);
      expect((await bus.jsm.streams.info(stream)).state.messages - before).toBe(40);
    } finally {
      await victim.start();
    }
  }, 120_000);
});
