import { type Bus, issuesOf, type Logger, type TypedKv, type Versioned } from '@computepods/bus';
import { DependencyManager } from '@computepods/depgraph';
import {
  ArtefactRecord,
  buckets,
  type CanBuildFrom,
  RulesDeclared,
  type TaskTrace,
} from '@computepods/protocol';
import { z } from 'zod';
import { ArtefactManager } from './artefacts.js';
import type { MajorDomoConfig } from './config.js';
import { DeclarationBesidesRules, planText } from './declaration.js';
import { compactRecords, snapshotRecords } from './snapshot-records.js';
import type {
  BucketMark,
  Loaded,
  PassMark,
  Snapshot,
  SnapshotMeta,
  StoredMeta,
} from './snapshot-store.js';
import {
  applyArtefactTail,
  applyTraceTail,
  passOf,
  restoreArtefact,
  restoreTrace,
} from './snapshot-tail.js';

/**
 * What a restart restores from, before the rules go in: the graph (empty, or a snapshot's), the
 * artefact records, the cycles' passes, and fill(), which puts the rest into the graph inside
 * the restore's batch (every record and trace of a full restore; the keys written since a
 * snapshot). Either way the graph and records end as a full restore from the buckets leaves
 * them (restore-snapshot.test.ts compares the two).
 */
export interface RestoreState {
  readonly from: 'snapshot' | 'buckets' | 'standby';
  readonly dm: DependencyManager;
  readonly artefacts: ArtefactManager;
  readonly passes: Map<string, PassMark>;
  /** The revisions the state reflects once filled (a snapshot taken of it says so). */
  readonly marks: { artefacts: BucketMark; traces: BucketMark };
  /** Keys read after the snapshot, per bucket (a snapshot restore). */
  readonly tail?: { artefacts: number; traces: number };
  /** Whether a new snapshot is worth storing (none was used, or its tail was long). */
  readonly resnapshot: boolean;
  /**
   * The declarations (planText by chef) the graph was planned with when it came planned (a
   * snapshot's, a standby's): MajorDomo's registry starts from them and the declarations now
   * are applied as a running MajorDomo applies a changed one. Undefined: a graph from nothing.
   */
  readonly planned?: Readonly<Record<string, string>>;
  fill(): void;
}

/**
 * What the graph was planned with besides the buckets: each chef's declaration as planText gives
 * it (its chef and rules; not its $SRV id, new at each start of the chef), the goals.
 */
export interface PlannedWith {
  readonly declarations: Record<string, string>;
  readonly goals: string[];
}

export function plannedWith(
  declarations: ReadonlyMap<string, Versioned<RulesDeclared>>,
  answers: readonly CanBuildFrom[],
  /** planText of some of the declarations, known already (validDeclarations' `texts`). */
  texts?: ReadonlyMap<string, string>,
): PlannedWith {
  const byChef: Record<string, string> = {};
  for (const [chef, { value }] of declarations) byChef[chef] = texts?.get(chef) ?? planText(value);
  return { declarations: byChef, goals: answers.map((a) => JSON.stringify(a)).sort() };
}

/** The same bucket read as JSON only: values are not parsed with its schema (validDeclarations). */
export function unparsed(kv: TypedKv<z.ZodType>): TypedKv<z.ZodUnknown> {
  return kv.withSchema(z.unknown());
}

/**
 * The rules bucket's declarations by chef, as its entries() gives them, but with no zod parse of
 * the rules of one whose plan (planText: chef and rules) is the one the snapshot was planned with
 * (`planned`, planText of the value the schema gave then): those are the schema's value still,
 * for the snapshot's parts hash to their head, which names the schemas (RECORD_SCHEMA covers
 * RulesDeclared). The rest of it (pod, types, srv: a restarted chef's new $SRV id) is small and
 * parsed. Any other declaration is parsed whole, and an invalid one logged and left out, as
 * entries() does. At 100k artefacts (1,204 rules in 10 declarations) the parse was ~200 ms of a
 * restart. `texts`, when given, gets planText of each declaration kept that way (`planned`'s
 * text: its chef and rules are the stored value's), for plannedWith not to make it again.
 */
export function validDeclarations(
  stored: ReadonlyMap<string, Versioned<unknown>>,
  planned: Readonly<Record<string, string>> | undefined,
  logger: Logger,
  texts?: Map<string, string>,
): Map<string, Versioned<RulesDeclared>> {
  const out = new Map<string, Versioned<RulesDeclared>>();
  for (const [chef, { value, revision }] of stored) {
    const known = planned?.[chef];
    if (known !== undefined && isDeclared(value) && planText(value) === known) {
      const rest = DeclarationBesidesRules.safeParse(value);
      if (rest.success && rest.data.chef === value.chef) {
        out.set(chef, { value: { ...rest.data, rules: value.rules }, revision });
        texts?.set(chef, known);
        continue;
      }
    }
    const parsed = RulesDeclared.safeParse(value);
    if (parsed.success) out.set(chef, { value: parsed.data, revision });
    else
      logger.warn(
        { bucket: 'rules', key: chef, issues: issuesOf(parsed.error) },
        'invalid KV value ignored',
      );
  }
  return out;
}

/** An object with the fields planText reads (their types are what comparing its text checks). */
function isDeclared(value: unknown): value is Pick<RulesDeclared, 'chef' | 'rules'> {
  return typeof value === 'object' && value !== null && 'chef' in value && 'rules' in value;
}

/** A snapshot this long behind (keys written since) is taken again after the restore. */
export function longTail(keys: number, artefacts: number): boolean {
  return keys >= Math.max(1_000, artefacts / 20);
}

/** Every record and trace of the buckets (the restore when no snapshot can be used). */
export async function fromBuckets(
  bus: Bus,
  cfg: MajorDomoConfig,
  traces: TypedKv<typeof TaskTrace>,
): Promise<RestoreState> {
  const dm = new DependencyManager({ passLimit: cfg.passLimit });
  const artefacts = await ArtefactManager.fromRecords(bus, [], dm);
  const [records, traced] = await Promise.all([
    artefacts.kv.changesSince(0),
    traces.changesSince(0),
  ]);
  for (const [path, v] of records.changes) artefacts.stored(path, v?.value);
  const passes = new Map<string, PassMark>();
  let rest: typeof traced.changes | undefined = traced.changes;
  for (const [taskId, v] of rest) {
    const mark = v && passOf(taskId, v.value);
    if (mark) passes.set(taskId, mark);
  }
  return {
    from: 'buckets',
    dm,
    artefacts,
    passes,
    marks: {
      artefacts: { created: records.created, revision: records.last },
      traces: { created: traced.created, revision: traced.last },
    },
    resnapshot: true,
    fill() {
      for (const rec of artefacts.records()) restoreArtefact(dm, rec);
      for (const [taskId, v] of rest ?? []) if (v) restoreTrace(dm, taskId, v.value, bus.logger);
      rest = undefined; // 100,000s of traces: not kept once in the graph
    },
  };
}

/**
 * The stored snapshot and the keys written since, or undefined (logged, saying why) when it
 * cannot stand for the buckets: none, another format or pass limit, corrupt, planned with other
 * goals, or a bucket made again since. Planned with other declarations, it stands: MajorDomo
 * applies the change of rules to it (RestoreState.planned).
 */
export async function fromSnapshot(
  bus: Bus,
  cfg: MajorDomoConfig,
  traces: TypedKv<typeof TaskTrace>,
  loaded: Loaded,
  planned: PlannedWith,
  purpose: 'restore' | 'compaction' = 'restore',
): Promise<RestoreState | undefined> {
  const ignored = (why: string) => {
    bus.logger.info(
      { why },
      purpose === 'restore'
        ? 'graph snapshot not used; restoring from every record'
        : 'graph snapshot not compacted; the next restart takes a new one',
    );
    return undefined;
  };
  if ('why' in loaded) return ignored(loaded.why);
  const changed = otherGoals(loaded.snapshot.meta, planned);
  if (changed) return ignored(changed);
  const opened = await openSnapshot(bus, cfg, traces, loaded.snapshot);
  return typeof opened === 'string' ? ignored(opened) : opened;
}

/**
 * A snapshot's graph and records with the keys written since, whatever it was planned with (a
 * standby checks that at its takeover): the state, or why it cannot stand for the buckets.
 */
export async function openSnapshot(
  bus: Bus,
  cfg: MajorDomoConfig,
  traces: TypedKv<typeof TaskTrace>,
  snapshot: Snapshot,
): Promise<RestoreState | string> {
  const { head, meta, graph } = snapshot;
  if (meta.passLimit !== cfg.passLimit)
    return `taken with pass limit ${meta.passLimit}, now ${cfg.passLimit}`;
  // The server's part first: the keys written since the snapshot are asked for (the artefacts
  // bucket opened for them) before the graph loads, which is CPU only, so the round trips of a
  // loaded server overlap with it instead of following it.
  const tailing = bus
    .kv(buckets.artefacts(bus.project), ArtefactRecord)
    .then((kv) => tailSince(kv, traces, { artefacts: head.artefacts, traces: head.traces }));
  tailing.catch(() => undefined); // awaited below, unless the graph is refused first
  let dm: DependencyManager;
  try {
    // Its bytes matched the head's sha256 as they were read (SnapshotStore.load): depgraph's
    // crc32 of them would check nothing more.
    dm = DependencyManager.fromBytes(graph, { passLimit: cfg.passLimit }, { verified: true });
  } catch (err) {
    return `graph not loaded: ${(err as Error).message}`;
  }
  const records = snapshotRecords(dm, meta.records);
  if (typeof records === 'string') return records;
  const artefacts = await ArtefactManager.fromRecords(bus, records, dm);
  const passes = new Map(meta.passes.map((m) => [m.taskId, m]));
  const tail = await tailing;
  if (typeof tail === 'string') return tail;
  return {
    from: 'snapshot',
    dm,
    artefacts,
    passes,
    marks: tail.marks,
    tail: tail.keys,
    resnapshot: longTail(tail.keys.artefacts + tail.keys.traces, artefacts.size),
    planned: meta.declarations,
    fill() {
      tail.apply(dm, artefacts, passes, bus.logger);
    },
  };
}

/** The keys written to the artefacts and traces buckets after `marks`, to apply to a state. */
export interface Tail {
  /** Where the buckets stand once applied. */
  readonly marks: { artefacts: BucketMark; traces: BucketMark };
  readonly keys: { artefacts: number; traces: number };
  /** Applies them (inside dm.batch) to a graph, records and passes that stand at the marks read from. */
  apply(
    dm: DependencyManager,
    artefacts: ArtefactManager,
    passes: Map<string, PassMark>,
    logger: Logger,
  ): void;
}

/** The tail after `marks`, or why it cannot follow them (a bucket made again, or behind them). */
export async function tailSince(
  artefacts: TypedKv<typeof ArtefactRecord>,
  traces: TypedKv<typeof TaskTrace>,
  marks: { artefacts: BucketMark; traces: BucketMark },
): Promise<Tail | string> {
  const [records, traced] = await Promise.all([
    artefacts.changesSince(marks.artefacts.revision),
    traces.changesSince(marks.traces.revision),
  ]);
  for (const [name, mark, now] of [
    ['artefacts', marks.artefacts, records],
    ['traces', marks.traces, traced],
  ] as const) {
    if (now.created !== mark.created) return `the ${name} bucket was made again since`;
    if (now.last < mark.revision)
      return `the ${name} bucket is at revision ${now.last}, before the snapshot's`;
  }
  return {
    marks: {
      artefacts: { created: records.created, revision: records.last },
      traces: { created: traced.created, revision: traced.last },
    },
    keys: { artefacts: records.changes.size, traces: traced.changes.size },
    apply(dm, into, passes, logger) {
      applyArtefactTail(dm, into, records.changes);
      applyTraceTail(dm, passes, traced.changes, logger);
    },
  };
}

/**
 * Why a graph planned with `meta` cannot stand for the goals stored now, if it cannot. Other
 * declarations do not stop it: a restore applies the change of rules (RestoreState.planned).
 */
export function otherGoals(
  meta: Pick<SnapshotMeta, 'goals'>,
  now: Pick<PlannedWith, 'goals'>,
): string | undefined {
  if (meta.goals.join('\n') !== now.goals.join('\n')) return 'the goals changed since';
  return undefined;
}

/** The chefs whose declared rules are not those a graph was planned with. */
export function changedChefs(
  planned: Readonly<Record<string, string>>,
  now: Readonly<Record<string, string>>,
): string[] {
  const chefs = new Set([...Object.keys(planned), ...Object.keys(now)]);
  return [...chefs].filter((chef) => planned[chef] !== now[chef]).sort();
}

/** The snapshot of a restored MajorDomo: its graph and what a restore reads besides. */
export function takeSnapshot(
  dm: DependencyManager,
  artefacts: ArtefactManager,
  passes: ReadonlyMap<string, PassMark>,
  planned: PlannedWith,
  passLimit: number,
): { meta: StoredMeta; graph: Uint8Array } {
  return {
    graph: dm.exportBytes(),
    meta: {
      passLimit,
      records: compactRecords(dm, artefacts),
      passes: [...passes.values()],
      declarations: planned.declarations,
      goals: planned.goals,
    },
  };
}
