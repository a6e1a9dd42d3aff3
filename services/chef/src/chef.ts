import { type Bus, ensureProjectStreams, type Service } from '@computepods/bus';
import { BuildResult, buckets, RulesDeclared, streams, subjects } from '@computepods/protocol';
import { handleBuild } from './build.js';
import { InFlightBuilds, killTask, listenForCancels, replayCancels } from './cancel.js';
import type { ChefConfig } from './config.js';
import type { ChefDefinition } from './definition.js';
import { InputFetcher } from './fetch-inputs.js';
import { HashCache } from './hash-cache.js';
import { startHeartbeat } from './heartbeat.js';
import { answerHowToBuild } from './how-to-build.js';
import { ProjectConfig } from './project-config.js';
import { resultOut } from './result-out.js';
import { TaskView } from './task-view.js';

/**
 * A chef: declares its rules (kept in the project's rules bucket, which MajorDomo watches, and
 * re-put as a heartbeat), answers MajorDomo's "how to build" questions, takes build requests from its own work queue and turns each into a
 * runner task, and kills the task of a build MajorDomo cancels.
 */
export async function startChef(bus: Bus, cfg: ChefConfig, def: ChefDefinition): Promise<Service> {
  const p = cfg.project;
  await ensureProjectStreams(bus, p);
  const rulesKv = await bus.kv(buckets.rules(p), RulesDeclared);
  // Only what the chef reads of each record is decoded (task-view.ts).
  const tasks = await bus.kv(buckets.tasks(p), TaskView, { history: 5 });
  const results = await bus.kv(buckets.builds(p), BuildResult);
  // Followed before the first build is taken: every task goes to a queue the project binds.
  const queues = await ProjectConfig.start(bus, p);

  // On-demand rules are not declared: they answer "how to build" questions only.
  const declaration = {
    chef: cfg.chef,
    pod: cfg.pod,
    types: def.types,
    rules: def.rules.filter((r) => !r.onDemand),
    ...(bus.srv ? { srv: { name: bus.srv.identity.name, id: bus.srv.id } } : {}),
  };
  const declare = () => rulesKv.put(cfg.chef, declaration);
  const inflight = new InFlightBuilds((taskId) => killTask(bus, tasks, taskId, bus.logger));
  const stopCancels = listenForCancels(bus, inflight);
  // The build queue's durable consumer (replicas of one name share it).
  const durable = `chef-${cfg.chef}`;
  // Before any request is taken up: the cancels a dead predecessor held in memory (cancel.ts).
  await replayCancels(bus, inflight, durable).then(
    (n) => n > 0 && bus.logger.info({ cancels: n }, 'stored build cancels replayed'),
    // Not a reason to stay down: without them, a request cancelled while no chef ran is built.
    (err: unknown) =>
      bus.logger.warn(
        { err: String(err) },
        `could not read the stored build cancels; a request cancelled while no chef of ${cfg.chef} ran may be built all the same${/Permissions Violation/.test(String(err)) ? `. These credentials predate the right to read them: make new ones with \`cpctrl -p ${p} creds create chef --name ${cfg.chef}\`` : ''}`,
      ),
  );
  const hashes = new HashCache();
  const fetcher = new InputFetcher(cfg.pods, cfg.pod, cfg.workspace, bus.logger, hashes);
  const ctx = {
    bus,
    project: p,
    chef: cfg.chef,
    pod: cfg.pod,
    workspace: cfg.workspace,
    rules: new Map(def.rules.map((r) => [r.id, r])),
    tasks,
    results,
    resultOut: resultOut(results),
    fetcher,
    hashes,
    inflight,
    queues,
    taskWait: cfg.taskWait,
  };
  // Replicas of one name share the durable. MajorDomo PINGs `$SRV.PING.chef` (each answers with
  // its chef name, main.ts) and, when one stops answering, has the requests it held handed out
  // again (majordomo/src/chef-replicas.ts): those of live replicas too, so a request arriving
  // again while this process builds it waits for that build and is acknowledged with it,
  // reported once.
  const building = new Map<string, Promise<void>>();
  const consumer = await bus.consume({
    stream: streams.builds(p),
    durable,
    filterSubject: subjects.buildRequest(p, cfg.chef),
    accept: ['build.requested'],
    concurrency: cfg.concurrency,
    maxDeliver: 10,
    // How long a pulled request may go unacknowledged (its handler keeps it alive meanwhile).
    ackWaitMs: cfg.ackWaitMs,
    // A plain ack, no round trip: a lost one brings the request back after the ack wait, and
    // handleBuild answers it from the build's record (test/src/chef-repeat.test.ts).
    confirmAck: false,
    handler: (msg, mctx) => {
      const key = msg.id;
      const same = building.get(key);
      if (same) return same;
      const build = handleBuild(
        ctx,
        msg.body,
        { id: msg.id, cid: msg.cid, sequence: mctx.sequence },
        mctx.logger,
      ).finally(() => building.delete(key));
      building.set(key, build);
      return build;
    },
  });
  const stopAnswers = answerHowToBuild(bus, def.rules, { chef: cfg.chef, pod: cfg.pod });
  // Declared last: MajorDomo may dispatch at once, and the cancel listener must already be up.
  await declare();
  const stopHeartbeat = startHeartbeat(declare, cfg.heartbeatMs, bus.logger);
  bus.logger.info(
    {
      rules: def.rules.map((r) => r.id),
      workspace: cfg.workspace,
      pods: Object.keys(cfg.pods),
      heartbeatMs: cfg.heartbeatMs,
    },
    'rules declared',
  );
  return {
    async stop() {
      stopHeartbeat();
      stopAnswers();
      await consumer.stop();
      stopCancels();
      queues.stop();
      await fetcher.close();
    },
  };
}
