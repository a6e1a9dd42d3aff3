// The generated code base (bench/lib/graph-gen.ts) as a real site's project holds it in KV: the
// chefs' declarations (rules bucket), one record per artefact (artefacts bucket) and one trace
// per task (traces bucket), as MajorDomo wrote them once everything was built.
import type { Bus } from '@computepods/bus';
import type { RuleSpec } from '@computepods/depgraph';
import {
  ArtefactRecord,
  buckets,
  type RuleInput,
  RulesDeclared,
  TaskTrace,
} from '@computepods/protocol';
import type { CodeBase } from '../lib/graph-gen.js';

/** Puts in flight at once: enough to keep the server busy, few enough to bound memory. */
const WINDOW = 1_000;

/**
 * Which chef declares a rule: the compilers and document tools one chef, each layer's archive
 * rules another (a declaration is one KV value, at most the server's max payload), the linker a
 * third.
 */
function chefOf(ruleId: string): string {
  const layer = /^ar-(l\d+)-/.exec(ruleId)?.[1];
  if (layer) return `ar-${layer}`;
  if (ruleId.startsWith('ld-')) return 'ld';
  return 'cc';
}

function ruleOf(spec: RuleSpec): RuleInput {
  return {
    id: spec.id,
    inputs: [...spec.inputs],
    optionalInputs: [...(spec.optionalInputs ?? [])],
    outputs: [...spec.outputs],
    command: 'true',
  };
}

export interface SeededProject {
  readonly chefs: string[];
  readonly artefacts: number;
  readonly traces: number;
  readonly seedMs: number;
}

async function putAll<T>(items: Iterable<T>, put: (item: T) => Promise<unknown>): Promise<void> {
  let inFlight: Promise<unknown>[] = [];
  for (const item of items) {
    inFlight.push(put(item));
    if (inFlight.length >= WINDOW) {
      await Promise.all(inFlight);
      inFlight = [];
    }
  }
  await Promise.all(inFlight);
}

/** Writes the project's records; every artefact up to date with its trace (a settled site). */
export async function seedProject(
  bus: Bus,
  project: string,
  cb: CodeBase,
  pod: string,
): Promise<SeededProject> {
  const t0 = performance.now();
  const byChef = new Map<string, RuleInput[]>();
  for (const spec of cb.state.rules) {
    const chef = chefOf(spec.id);
    byChef.set(chef, [...(byChef.get(chef) ?? []), ruleOf(spec)]);
  }
  const rulesKv = await bus.kv(buckets.rules(project), RulesDeclared);
  for (const [chef, rules] of byChef) await rulesKv.put(chef, { chef, pod, rules });

  const producer = new Map<string, string>();
  for (const [taskId, t] of Object.entries(cb.state.traces))
    for (const out of Object.keys(t.outputs)) producer.set(out, taskId);
  const updated = new Date().toISOString();
  const artefactsKv = await bus.kv(buckets.artefacts(project), ArtefactRecord);
  const paths = Object.entries(cb.state.artefacts);
  await putAll(paths, ([path, sha256]) => {
    const task = producer.get(path);
    return artefactsKv.put(path, {
      path,
      status: task ? 'up_to_date' : 'source',
      sha256,
      cutoff: sha256,
      size: 0,
      ...(task ? { producer: task, buildId: 'seeded' } : {}),
      pods: [pod],
      updated,
    });
  });
  const tracesKv = await bus.kv(buckets.traces(project), TaskTrace);
  const traces = Object.entries(cb.state.traces);
  await putAll(traces, ([taskId, t]) =>
    tracesKv.put(taskId, {
      taskId,
      inputs: t.inputs,
      outputs: t.outputs,
      discovered: [...(t.discovered ?? [])],
      buildId: 'seeded',
      time: updated,
    }),
  );
  return {
    chefs: [...byChef.keys()],
    artefacts: paths.length,
    traces: traces.length,
    seedMs: performance.now() - t0,
  };
}
