import { type Bus, ensureProjectStreams } from '@computepods/bus';
import {
  BuildResult,
  buckets,
  RulesDeclared,
  streams,
  subjects,
  TaskRecord,
} from '@computepods/protocol';
import { handleBuild } from './build.js';
import type { ChefConfig } from './config.js';
import type { ChefDefinition } from './definition.js';

/**
 * A chef: declares its rules (kept in the project's rules bucket, which MajorDomo watches),
 * then takes build requests from its own work queue and turns each into a runner task.
 */
export async function startChef(
  bus: Bus,
  cfg: ChefConfig,
  def: ChefDefinition,
): Promise<() => Promise<void>> {
  const p = cfg.project;
  await ensureProjectStreams(bus, p);
  const rulesKv = await bus.kv(buckets.rules(p), RulesDeclared);
  const tasks = await bus.kv(buckets.tasks(p), TaskRecord, { history: 5 });
  const results = await bus.kv(buckets.builds(p), BuildResult);

  await rulesKv.put(cfg.chef, { chef: cfg.chef, pod: cfg.pod, types: def.types, rules: def.rules });
  bus.logger.info(
    { rules: def.rules.map((r) => r.id), workspace: cfg.workspace },
    'rules declared',
  );

  const ctx = {
    bus,
    project: p,
    chef: cfg.chef,
    pod: cfg.pod,
    workspace: cfg.workspace,
    rules: new Map(def.rules.map((r) => [r.id, r])),
    tasks,
    results,
  };
  const consumer = await bus.consume({
    stream: streams.builds(p),
    durable: `chef-${cfg.chef}`,
    filterSubject: subjects.buildRequest(p, cfg.chef),
    accept: ['build.requested'],
    concurrency: cfg.concurrency,
    maxDeliver: 10,
    handler: (msg, mctx) => handleBuild(ctx, msg.body, msg.cid, mctx.logger),
  });
  return async () => {
    await consumer.stop();
    await bus.close();
  };
}
