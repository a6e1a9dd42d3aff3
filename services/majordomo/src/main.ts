import { atOwnTierUp, Bus, createLogger, serviceHelp, startService } from '@computepods/bus';
import { buckets, TaskRecord } from '@computepods/protocol';
import { serveApi } from './api.js';
import { watchChefReplicas } from './chef-replicas.js';
import { majorDomoConfig, majorDomoEnv } from './config.js';
import { limitHeapGrowth, restoreUnderOwnGrowth } from './heap-growth.js';
import { startHttp } from './http.js';
import { standBy } from './leadership.js';
import { MajorDomo } from './majordomo.js';
import { watchRunnerLiveness } from './runner-liveness.js';
import { apiToken } from './token.js';

const logger = createLogger('majordomo');
startService(
  logger,
  async ({ signal, opened }) => {
    const cfg = majorDomoConfig();
    // A standby may hold a graph for long (warm-standby.ts): its heap is limited from the start.
    // Alone, MajorDomo sets it once restored (heap-growth.ts: V8's flags unchanged till then).
    if (cfg.lease.enabled) limitHeapGrowth(cfg.heapGrowingPercent);
    const bus = opened(
      await Bus.connect({
        service: 'majordomo',
        project: cfg.project,
        logger: logger.child({ project: cfg.project }),
        description: 'ComputePods MajorDomo: dependency graph, artefacts, build planning',
        signal,
        // Its KV writes and stream publishes are its hot path (about five a build): no stack
        // trace captured per request in advance.
        asyncTraces: false,
      }),
    );
    const { token, file } = apiToken(cfg.apiToken, cfg.stateDir);
    // Standby mode (CP_MAJORDOMO_HA=1): waits here, answering 503 naming the leader, until this
    // process takes the lease (or is stopped); then starts as a restarted MajorDomo does, from KV.
    const leader = await standBy(bus, cfg, token, signal);
    if (leader) opened({ close: () => leader.leadership.lease.release() });
    signal.throwIfAborted();
    const { restored, settle } = await restoreUnderOwnGrowth(
      cfg.heapGrowingPercent,
      bus.logger,
      () => atOwnTierUp(() => MajorDomo.start(bus, cfg, leader?.leadership, leader?.warm)),
    );
    const { md, stop, rulesWatch } = restored;
    opened({ close: stop });
    signal.throwIfAborted();
    // The leader only: replicas that stop answering have their work handed on or resolved.
    const tasks = await bus.kv(buckets.tasks(cfg.project), TaskRecord, { history: 5 });
    const stopReplicas = [
      await watchChefReplicas(bus, rulesWatch, cfg.chefReplicaDeadMs),
      watchRunnerLiveness(bus, tasks, cfg.runnerDeadMs),
    ];
    opened({
      close: async () => {
        for (const stopWatching of stopReplicas) stopWatching();
      },
    });
    serveApi(bus, md);
    const http = opened(
      await startHttp(bus, md, { host: cfg.httpHost, port: cfg.httpPort, token }),
    );
    const address = http.server.address();
    const port = typeof address === 'object' && address ? address.port : cfg.httpPort;
    const url = `http://${cfg.httpHost}:${port}`;
    // In the lease before "ready": a standby names it to clients from there.
    await leader?.leadership.lease.setUrl(url);
    bus.logger.info({ url, openapi: `${url}/openapi.json`, tokenFile: file }, 'HTTP API listening');
    // Ready once the NATS API's subscriptions are known to the server, not before: a request sent
    // on seeing this line must find a responder.
    await bus.nc.flush();
    bus.logger.info('majordomo ready');
    settle(); // the heap's collection after the restore, once ready (heap-growth.ts)
    const shutdown = async () => {
      for (const stopWatching of stopReplicas) stopWatching();
      try {
        await http.close();
        await stop();
      } finally {
        await bus.close();
      }
    };
    leader?.onLost(shutdown);
    return {
      async stop() {
        await leader?.leadership.lease.release();
        await shutdown();
      },
    };
  },
  {
    help: serviceHelp(
      'majordomo',
      "keeps one project's dependency graph and artefacts, plans builds and serves the API and MajorDomoUI",
      majorDomoEnv,
    ),
  },
);
