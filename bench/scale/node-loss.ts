// Cluster node-loss recovery for pnpm bench scale: a 3-node JetStream cluster (the test kit's,
// from deploy/nats's templates; TLS, operator mode, R3), a settled generated project, MajorDomo
// leading it. The builds stream's Raft leader is killed -9 and one source edit is announced at
// once, as the fswatcher announces it (its credentials, riding to another node): the time from
// the kill to the build request stored in the builds stream is what a user waits for.
import { Bus, createLogger } from '@computepods/bus';
import { streams, subjects } from '@computepods/protocol';
import { NatsCluster } from '@computepods/testkit';
import { Stack } from '../../test/src/stack.js';
import { type CodeBase, hashOf } from '../lib/graph-gen.js';
import { seedProject } from './project.js';

const POD = 'pod-scale';
const now = () => performance.now();

/** The builds stream's last sequence, asked again while the cluster elects (errors are waits). */
async function buildsSeq(bus: Bus, project: string): Promise<number | undefined> {
  return bus.jsm.streams
    .info(streams.builds(project))
    .then((i) => i.state.last_seq)
    .catch(() => undefined);
}

export async function nodeLoss(cb: CodeBase, target: number): Promise<Record<string, number>> {
  const project = `nodeloss${target}`;
  const stack = await Stack.start(project, { cluster: true });
  try {
    const cluster = stack.nats;
    if (!(cluster instanceof NatsCluster)) throw new Error('expected a NATS cluster');
    await seedProject(stack.bus, project, cb, POD);
    const md = await stack.start('majordomo', { CP_CHEF_TIMEOUT_MS: String(2 ** 31 - 1) });
    await md.waitForOutput(/"msg":"majordomo ready"/, 600_000);
    const logger = createLogger('scale-fswatcher');
    logger.level = 'silent';
    const watcher = await Bus.connect({
      servers: cluster.url,
      credsFile: await stack.creds({ role: 'fswatcher', scope: POD }),
      service: 'fswatcher',
      project,
      logger,
      discoverable: false,
    });
    try {
      const file = cb.cFiles[0];
      if (!file) throw new Error('the generated code base has no C file');
      const announce = (seq: number) =>
        watcher.publish(
          'files.changed',
          subjects.filesChanged(project, POD),
          {
            pod: POD,
            events: [
              {
                kind: 'changed',
                path: file,
                size: 1,
                mtimeNs: String(BigInt(Date.now()) * 1_000_000n + BigInt(seq)),
                sha256: hashOf(`${file} node loss ${seq}`),
              },
            ],
          },
          { msgId: `nodeloss-${target}-${seq}` },
        );
      const dispatched = async (after: number) => {
        for (;;) {
          const seq = await buildsSeq(stack.bus, project);
          if (seq !== undefined && seq > after) return;
          await new Promise((r) => setTimeout(r, 10));
        }
      };
      // Healthy first: the same edit path with every node up.
      const before = (await buildsSeq(stack.bus, project)) ?? 0;
      const t0 = now();
      await announce(1);
      await dispatched(before);
      const healthyMs = now() - t0;

      const info = await stack.bus.jsm.streams.info(streams.builds(project));
      const leader = info.cluster?.leader;
      if (!leader) throw new Error('the builds stream has no leader');
      const victim = cluster.node(leader);
      const seqBefore = info.state.last_seq;
      const t1 = now();
      await victim.kill9();
      await announce(2);
      await dispatched(seqBefore);
      const lossMs = now() - t1;
      await victim.start();
      return {
        node_loss_artefacts: Object.keys(cb.state.artefacts).length,
        node_loss_healthy_edit_to_request_ms: healthyMs,
        node_loss_leader_kill_to_request_ms: lossMs,
      };
    } finally {
      await watcher.close();
    }
  } catch (err) {
    console.error(stack.logs(4000));
    throw err;
  } finally {
    await stack[Symbol.asyncDispose]();
  }
}
