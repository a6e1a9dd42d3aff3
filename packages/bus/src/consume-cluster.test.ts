import { streams, subjects } from '@computepods/protocol';
import { NatsCluster } from '@computepods/testkit';
import { jetstreamManager } from '@nats-io/jetstream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Bus } from './bus.js';
import { quietLogger } from './logger.js';
import { ensureProjectStreams } from './project.js';

/**
 * Bus.consume's durable pull consumer when the node leading it is killed -9 (real 3-node
 * cluster, R3 stream and consumer). The consuming client is connected to the two other nodes,
 * so it never reconnects: only missed heartbeats tell it that its pull died with the leader.
 */
describe('Bus.consume across the loss of its consumer leader (real 3-node cluster)', () => {
  let cluster: NatsCluster;
  let admin: Bus;
  let consumer: Bus;
  const project = 'consc';
  const stream = streams.files(project);
  const subject = subjects.filesChanged(project, 'pod-a');
  const quiet = quietLogger('consume-cluster-test');
  /** What the consuming bus logged, as parsed JSON lines. */
  const logged: { level: number; msg: string; durable?: string }[] = [];
  const seen = new Map<string, number>();

  const connect = (servers: string, logger = quiet) =>
    Bus.connect({
      servers,
      tls: { caFile: cluster.caFile },
      service: 'consume-test',
      project,
      logger,
      discoverable: false,
    });
  const change = (path: string) => ({
    pod: 'pod-a',
    events: [
      {
        kind: 'changed' as const,
        path,
        size: 1,
        mtimeNs: '1',
        sha256: '0'.repeat(64),
      },
    ],
  });
  const publish = (path: string) =>
    admin.publish('files.changed', subject, change(path), { msgId: path });
  const delivered = async (path: string, withinMs = 60_000) => {
    for (const end = performance.now() + withinMs; !seen.has(path); ) {
      if (performance.now() > end)
        throw new Error(`${path} was not delivered within ${withinMs} ms`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  const consume = (bus: Bus, durable: string) =>
    bus.consume({
      stream,
      durable,
      accept: ['files.changed'],
      handler: async (msg) => {
        for (const e of msg.body.events) seen.set(e.path, (seen.get(e.path) ?? 0) + 1);
      },
    });

  beforeAll(async () => {
    cluster = await NatsCluster.start();
    admin = await connect(cluster.url);
    await ensureProjectStreams(admin, project, { replicas: 3 });
  }, 120_000);
  afterAll(async () => {
    await consumer?.close();
    await admin?.close();
    await cluster?.[Symbol.asyncDispose]();
  });

  it('pulls again from the next leader: what is published after the election is delivered once, none lost', async () => {
    const durable = 'leader-loss';
    await admin.ensureConsumer({ stream, durable });
    const leader = (await admin.jsm.consumers.info(stream, durable)).cluster?.leader;
    expect(leader).toMatch(/^cp-nats-\d$/);
    const victim = cluster.node(leader as string);
    const others = cluster.nodes.filter((n) => n !== victim);
    consumer = await connect(others.map((n) => n.url).join(','));
    await consume(consumer, durable);
    await publish('before/0');
    await delivered('before/0');
    // Its ack processed by the leader before the kill. It may still be delivered again after the
    // election: an ack the leader took but had not yet replicated dies with it, and JetStream
    // delivers at least once (CI run 77 saw it twice; the services are idempotent for that).
    // The claim under test is about what is published after the election.
    for (const end = performance.now() + 30_000; ; ) {
      const info = await admin.jsm.consumers.info(stream, durable);
      if (info.num_ack_pending === 0 && info.ack_floor.stream_seq >= 1) break;
      if (performance.now() > end) throw new Error('the ack of before/0 never reached the leader');
      await new Promise((r) => setTimeout(r, 20));
    }

    // Asked with a short timeout: an info unanswered while there is no leader is just a wait.
    const poll = await jetstreamManager(admin.nc, { timeout: 500, checkAPI: false });
    await victim.kill9();
    try {
      // The election, seen as an admin would: the consumer's info names a leader again.
      const killed = Date.now();
      for (;;) {
        const info = await poll.consumers.info(stream, durable).catch(() => undefined);
        const next = info?.cluster?.leader;
        if (next && next !== leader) break;
        if (Date.now() - killed > 60_000) throw new Error('no consumer leader elected in 60 s');
        await new Promise((r) => setTimeout(r, 100));
      }
      const elected = Date.now();
      const after = Array.from({ length: 10 }, (_, n) => `after/${n}`);
      for (const path of after) await publish(path);
      // The consumer is in order (concurrency 1): the last one delivered, every earlier one was.
      await delivered('after/9');
      // Said, not asserted (a shared, loaded machine): what the fix is about.
      console.log(
        `consumer leader ${leader} killed: new leader answered after ${elected - killed} ms, the first message published then delivered ${Date.now() - elected} ms later`,
      );
      expect(seen.get('before/0')).toBeGreaterThanOrEqual(1);
      for (const path of after) expect(seen.get(path), path).toBe(1);
      expect(seen.size).toBe(11);
    } finally {
      await victim.start();
    }
  }, 180_000);

  it('says in the log when its consumer is deleted, and is served again once it is created again', async () => {
    const durable = 'deleted';
    await admin.ensureConsumer({ stream, durable });
    const logger = pino(
      { level: 'debug' },
      { write: (line: string) => logged.push(JSON.parse(line)) },
    );
    const bus = await connect(cluster.url, logger);
    try {
      await consume(bus, durable);
      // A pull waiting at the consumer is answered 409 Consumer Deleted; one sent after is
      // unanswered, and the check after missed heartbeats finds it gone: either is logged.
      await admin.jsm.consumers.delete(stream, durable);
      for (const end = performance.now() + 30_000; ; ) {
        if (logged.some((l) => l.level === 50 && l.durable === durable)) break;
        if (performance.now() > end) throw new Error(`no error logged: ${JSON.stringify(logged)}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      const error = logged.find((l) => l.level === 50 && l.durable === durable);
      expect(error?.msg).toMatch(`consumer ${durable} of stream ${stream}`);
      // Made again (as provisioning would): every message of the stream comes to it.
      await admin.ensureConsumer({ stream, durable });
      seen.clear();
      await publish('again/0');
      await delivered('again/0');
      expect(seen.get('again/0')).toBe(1);
    } finally {
      await bus.close();
    }
  }, 120_000);
});
