// Cluster node-loss recovery for pnpm bench scale: a 3-node JetStream cluster (the test kit's,
// from deploy/nats's templates; TLS, operator mode, R3), a settled generated project, MajorDomo
// leading it. The node leading MajorDomo's files consumer is killed -9 (node_loss_victim_led
// names what else it led) and one source edit is announced at once, as the fswatcher announces
// it (its credentials, riding to another node): the time from the kill to the build request
// stored in the builds stream is what a user waits for. Said apart: the kill to the
// fswatcher's publish acknowledged (the files stream), to MajorDomo's build request sent (seen
// by a core subscriber), and to it stored; and what MajorDomo logged meanwhile (acked
// publishes and KV writes it tried again, and why).
import { Bus, quietLogger } from '@computepods/bus';
import { streams, subjects } from '@computepods/protocol';
import { NatsCluster } from '@computepods/testkit';
import { type JetStreamManager, jetstreamManager } from '@nats-io/jetstream';
import { Stack } from '../../test/src/stack.js';
import { type CodeBase, hashOf } from '../lib/graph-gen.js';
import { seedProject } from './project.js';

const POD = 'pod-scale';
const DURABLE = 'majordomo-files';
const now = () => performance.now();

/**
 * The builds stream's last sequence, asked again while the cluster elects (errors are waits).
 * Asked with a short timeout: a stream info unanswered while the stream has no leader would
 * otherwise hold the poll for the client's 5 s, and the figure would measure that.
 */
async function buildsSeq(jsm: JetStreamManager, project: string): Promise<number | undefined> {
  return jsm.streams
    .info(streams.builds(project))
    .then((i) => i.state.last_seq)
    .catch(() => undefined);
}

export async function nodeLoss(
  cb: CodeBase,
  target: number,
): Promise<Record<string, number | string>> {
  const project = `nodeloss${target}`;
  const stack = await Stack.start(project, { cluster: true });
  try {
    const cluster = stack.nats;
    if (!(cluster instanceof NatsCluster)) throw new Error('expected a NATS cluster');
    await seedProject(stack.bus, project, cb, POD);
    const poll = await jetstreamManager(stack.bus.nc, { timeout: 250 });
    const md = await stack.start('majordomo', { CP_CHEF_TIMEOUT_MS: String(2 ** 31 - 1) });
    await md.waitForOutput(/"msg":"majordomo ready"/, 600_000);
    const logger = quietLogger('scale-fswatcher');
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
          const seq = await buildsSeq(poll, project);
          if (seq !== undefined && seq > after) return;
          await new Promise((r) => setTimeout(r, 10));
        }
      };
      // Healthy first: the same edit path with every node up.
      const before = (await buildsSeq(poll, project)) ?? 0;
      const t0 = now();
      await announce(1);
      await dispatched(before);
      const healthyMs = now() - t0;

      // The node leading MajorDomo's files consumer: the delivery of the edit waits for its next
      // leader (and for MajorDomo's next pull), the slowest node to lose.
      const info = await stack.bus.jsm.streams.info(streams.builds(project));
      const files = await stack.bus.jsm.streams.info(streams.files(project));
      const consumer = await stack.bus.jsm.consumers.info(streams.files(project), DURABLE);
      const leader = consumer.cluster?.leader;
      if (!leader) throw new Error(`MajorDomo's consumer ${DURABLE} has no leader`);
      const victim = cluster.node(leader);
      const led = [
        `${DURABLE} consumer`,
        ...(files.cluster?.leader === leader ? ['files stream'] : []),
        ...(info.cluster?.leader === leader ? ['builds stream'] : []),
      ].join(', ');
      const seqBefore = info.state.last_seq;
      let sentMs = Number.NaN;
      let t1 = Number.POSITIVE_INFINITY; // requests before the kill are not the one measured
      const sub = stack.bus.nc.subscribe(subjects.buildRequestAll(project), {
        callback: () => {
          if (Number.isNaN(sentMs) && now() >= t1) sentMs = now() - t1;
        },
      });
      await stack.bus.nc.flush();
      const from = md.output.length;
      t1 = now();
      await victim.kill9();
      // When the consumer has a leader again, as an admin sees it: MajorDomo's lag is after that.
      const elected = (async () => {
        for (const end = now() + 60_000; now() < end; ) {
          const c = await poll.consumers.info(streams.files(project), DURABLE).catch(() => null);
          const next = c?.cluster?.leader;
          if (next && next !== leader) return now() - t1;
          await new Promise((r) => setTimeout(r, 50));
        }
        return Number.NaN;
      })();
      await announce(2);
      const announcedMs = now() - t1;
      await dispatched(seqBefore);
      const lossMs = now() - t1;
      const electedMs = await elected;
      sub.unsubscribe();
      const logged = md.output.slice(from);
      const retried = [
        ...logged.matchAll(
          /\{[^\n]*"msg":"(publish not acknowledged|KV write unanswered)[^\n]*\}/g,
        ),
      ].map((m) => JSON.parse(m[0]) as { err?: string; msg: string });
      const errs = [...new Set(retried.map((r) => r.err ?? '?'))].join('; ');
      // What MajorDomo said meanwhile, ms after the kill: where the time went.
      const killedAt = Date.now() - lossMs;
      for (const m of logged.matchAll(/\{[^\n]*\}/g)) {
        const l = JSON.parse(m[0]) as { time?: number; level?: number; msg?: string; err?: string };
        if ((l.level ?? 0) >= 30 && l.time)
          console.log(
            `  majordomo +${l.time - killedAt} ms: ${l.msg}${l.err ? ` (${l.err})` : ''}`,
          );
      }
      await victim.start();
      return {
        node_loss_artefacts: Object.keys(cb.state.artefacts).length,
        node_loss_healthy_edit_to_request_ms: healthyMs,
        node_loss_leader_kill_to_request_ms: lossMs,
        node_loss_kill_to_files_acked_ms: announcedMs,
        node_loss_kill_to_request_sent_ms: sentMs,
        node_loss_kill_to_consumer_leader_ms: electedMs,
        node_loss_md_retries: retried.length,
        node_loss_victim_led: led,
        ...(errs ? { node_loss_md_retry_errors: errs } : {}),
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
