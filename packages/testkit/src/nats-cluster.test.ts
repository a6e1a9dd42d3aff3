import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CLUSTER_NODE_TEMPLATE,
  NatsCluster,
  renderClusterNodeConfig,
  siteClusterNodeVars,
} from './nats-cluster.js';
import { ephemeralRange, tryReserve } from './reserved-port.js';

const deploy = fileURLToPath(new URL('../../../deploy/nats/', import.meta.url));

describe('the cluster node template', () => {
  it('renders the shipped deploy/nats/cluster-node{1,2,3}.conf exactly', () => {
    const template = readFileSync(CLUSTER_NODE_TEMPLATE, 'utf8');
    for (const n of [1, 2, 3])
      expect(
        renderClusterNodeConfig(template, siteClusterNodeVars(n)),
        `cluster-node${n}.conf differs from the template: edit the template and render again`,
      ).toBe(readFileSync(`${deploy}cluster-node${n}.conf`, 'utf8'));
  });

  it('refuses a placeholder it does not know, and a value with no place', () => {
    const vars = siteClusterNodeVars(1);
    expect(() => renderClusterNodeConfig('{{nme}}', vars)).toThrow(
      /unknown placeholder \{\{nme\}\}/,
    );
    expect(() => renderClusterNodeConfig('server_name: {{name}}', vars)).toThrow(/no place for/);
  });
});

/** A JetStream API request by hand (the test kit does not depend on @nats-io/jetstream). */
async function api<T>(nc: NatsConnection, subject: string, body: unknown = {}): Promise<T> {
  const msg = await nc.request(subject, JSON.stringify(body), { timeout: 5_000 });
  const reply = msg.json<T & { error?: { description: string } }>();
  if (reply.error) throw new Error(`${subject}: ${reply.error.description}`);
  return reply;
}

interface StreamInfo {
  state: { messages: number };
  cluster?: { leader?: string; replicas?: Array<{ name: string; current: boolean }> };
}

describe('NatsCluster', () => {
  let cluster: NatsCluster;
  let nc: NatsConnection;

  beforeAll(async () => {
    cluster = await NatsCluster.start();
    nc = await connect({
      servers: cluster.url.split(','),
      tls: { caFile: cluster.caFile },
      maxReconnectAttempts: -1,
      reconnectTimeWait: 200,
    });
  }, 120_000);
  afterAll(async () => {
    await nc?.close();
    await cluster?.[Symbol.asyncDispose]();
  });

  it('takes clients over TLS only, on each of three nodes', async () => {
    expect(cluster.nodes.map((n) => n.name)).toEqual(['cp-nats-1', 'cp-nats-2', 'cp-nats-3']);
    for (const node of cluster.nodes) {
      const one = await connect({ servers: node.url, tls: { caFile: cluster.caFile } });
      await one.close();
      // Without the CA the node's certificate cannot be verified; without TLS it is refused.
      await expect(
        connect({ servers: node.url, reconnect: false, timeout: 2_000 }),
      ).rejects.toThrow();
      await expect(
        connect({
          servers: `127.0.0.1:${node.port}`,
          tls: null,
          reconnect: false,
          timeout: 2_000,
        }),
      ).rejects.toThrow();
    }
  });

  it('keeps an R3 stream through a node killed -9 and brings the node back up to date', async () => {
    await api(nc, '$JS.API.STREAM.CREATE.T', {
      name: 'T',
      subjects: ['t.>'],
      num_replicas: 3,
      storage: 'file',
    });
    const info = () => api<StreamInfo>(nc, '$JS.API.STREAM.INFO.T');
    const publish = async (n: number) => {
      // Asked until a leader answers (an election after a kill takes a few seconds).
      for (const end = performance.now() + 30_000; ; ) {
        try {
          return await api<{ seq: number }>(nc, `t.${n}`, { n });
        } catch (err) {
          if (performance.now() > end) throw err;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    };
    for (let i = 0; i < 10; i++) await publish(i);
    const leader = (await info()).cluster?.leader;
    expect(leader).toMatch(/^cp-nats-\d$/);
    const victim = cluster.node(leader as string);
    await victim.kill9();
    // Its ports stay its own while it is down: reserved, outside the kernel's ephemeral range.
    const [lo, hi] = ephemeralRange();
    for (const port of [victim.port, victim.clusterPort]) {
      expect(port < lo || port > hi).toBe(true);
      expect(tryReserve(port)).toBeUndefined();
    }
    for (let i = 10; i < 20; i++) await publish(i);
    const during = await info();
    expect(during.state.messages).toBe(20);
    expect(during.cluster?.leader).not.toBe(victim.name);
    await victim.start();
    await victim.metaLeader();
    // Back as a replica, caught up with what was stored while it was down.
    for (const end = performance.now() + 30_000; ; ) {
      const now = await info().catch(() => undefined);
      const all = [now?.cluster?.leader, ...(now?.cluster?.replicas ?? []).map((r) => r.name)];
      const current = now?.cluster?.replicas?.every((r) => r.current) ?? false;
      if (now && all.includes(victim.name) && current && now.state.messages === 20) break;
      if (performance.now() > end) throw new Error(`not caught up: ${JSON.stringify(now)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }, 90_000);
});
