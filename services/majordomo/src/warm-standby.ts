import type { Bus, TypedKv } from '@computepods/bus';
import type { DependencyManager } from '@computepods/depgraph';
import { buckets, CanBuildFrom, RulesDeclared, TaskTrace } from '@computepods/protocol';
import type { ArtefactManager } from './artefacts.js';
import type { MajorDomoConfig } from './config.js';
import { GoalRules } from './goals.js';
import {
  longTail,
  openSnapshot,
  otherGoals,
  type PlannedWith,
  plannedWith,
  type RestoreState,
  tailSince,
} from './restore-state.js';
import { type BucketMark, type PassMark, SnapshotStore } from './snapshot-store.js';

/** What a standby holds: the graph and records as the buckets stood at `marks`. */
interface Followed {
  readonly dm: DependencyManager;
  readonly artefacts: ArtefactManager;
  readonly passes: Map<string, PassMark>;
  marks: { artefacts: BucketMark; traces: BucketMark };
  /** What the snapshot it came from was planned with (checked again at the takeover). */
  readonly planned: PlannedWith;
  readonly snapshotId: string;
  /** Keys applied since that snapshot (a long tail: the new leader stores a new one). */
  keys: number;
}

/**
 * A warm standby's graph (CP_MAJORDOMO_HA=1): a standby loads the leader's graph snapshot as a
 * restart does, then every CP_STANDBY_FOLLOW_MS reads the keys written to the artefacts and
 * traces buckets since and applies them (the snapshot tail of restore-state.ts, applied in
 * rounds). At the takeover (take()) only the keys written since its last round are read: the new
 * leader does not load and decode the snapshot, nor read its whole tail, after the old one died.
 *
 * It stands exactly where a restart from the buckets would (restore-snapshot.test.ts shows a
 * tail applied to a snapshot does; applied in rounds, each round starts where the last ended).
 * It falls back to a cold restore, logged, when there is no snapshot yet it can use (it tries
 * again each round while standing by), or when at the takeover the declarations or goals are not
 * those the snapshot was planned with, or a bucket was made again.
 */
export class WarmStandby {
  #followed: Followed | undefined;
  /** A snapshot that could not be used: not loaded again until the head changes. */
  #unusable: string | undefined;
  /** The last new snapshot compared with the graph held (read once per snapshot, not per round). */
  #checked: string | undefined;
  #round: Promise<void> = Promise.resolve();
  #stopped = false;
  readonly #timer: NodeJS.Timeout;

  private constructor(
    readonly bus: Bus,
    readonly cfg: MajorDomoConfig,
    readonly snapshots: SnapshotStore,
    readonly traces: TypedKv<typeof TaskTrace>,
    readonly plannedNow: () => Promise<PlannedWith>,
  ) {
    this.#timer = setInterval(() => this.#next(), cfg.standbyFollowMs);
    this.#timer.unref();
    this.#next();
  }

  /** Starts following the project's buckets. */
  static async start(bus: Bus, cfg: MajorDomoConfig): Promise<WarmStandby> {
    const p = cfg.project;
    const [snapshots, traces, rules, goals] = await Promise.all([
      SnapshotStore.open(bus, cfg.stateDir),
      bus.kv(buckets.traces(p), TaskTrace),
      bus.kv(buckets.rules(p), RulesDeclared),
      bus.kv(buckets.goals(p), CanBuildFrom),
    ]);
    const plannedNow = async () => {
      const [declarations, answers] = await Promise.all([
        rules.entries(),
        new GoalRules(goals).load(),
      ]);
      return plannedWith(declarations, answers);
    };
    return new WarmStandby(bus, cfg, snapshots, traces, plannedNow);
  }

  /** Whether a graph is held (a takeover would be warm). */
  get warm(): boolean {
    return this.#followed !== undefined;
  }

  /**
   * A round now (the timer runs them every CP_STANDBY_FOLLOW_MS): one at a time; one that fails
   * is logged and the next tries again.
   */
  follow(): Promise<void> {
    this.#next();
    return this.#round;
  }

  #next(): void {
    this.#round = this.#round.then(async () => {
      if (this.#stopped) return;
      try {
        if (this.#followed) await this.#follow(this.#followed);
        else await this.#load();
      } catch (err) {
        this.bus.logger.warn({ err: (err as Error).message }, 'standby: graph not followed');
      }
    });
  }

  async #load(): Promise<void> {
    const head = await this.snapshots.current();
    if (!head || head.id === this.#unusable) return;
    const [loaded, planned] = await Promise.all([this.snapshots.load(), this.plannedNow()]);
    if ('why' in loaded) return this.#cannot(head.id, loaded.why);
    const state = await openSnapshot(this.bus, this.cfg, this.traces, loaded.snapshot);
    if (typeof state === 'string') return this.#cannot(head.id, state);
    const snapshotPlan = {
      declarations: loaded.snapshot.meta.declarations,
      goals: loaded.snapshot.meta.goals,
    };
    // Planned with other goals than those stored now: a takeover could not use it. Not held;
    // the leader stores a new one at its next restart. (Other declared rules: the takeover
    // applies the change, as a restart does.)
    const changed = otherGoals(snapshotPlan, planned);
    if (changed) return this.#cannot(head.id, changed);
    this.#apply(state.dm, () => state.fill());
    this.#followed = {
      dm: state.dm,
      artefacts: state.artefacts,
      passes: state.passes,
      marks: state.marks,
      planned: snapshotPlan,
      snapshotId: head.id,
      keys: (state.tail?.artefacts ?? 0) + (state.tail?.traces ?? 0),
    };
    this.bus.logger.info(
      { snapshot: head.id, artefacts: state.artefacts.size, marks: state.marks },
      'standby: graph loaded from the snapshot; following the buckets',
    );
  }

  #cannot(id: string, why: string): void {
    this.#unusable = id;
    this.bus.logger.info({ why }, 'standby: graph snapshot not used; a takeover restores cold');
  }

  async #follow(f: Followed): Promise<void> {
    // A new snapshot (the leader restarted or compacted): the graph held stays, unless the
    // goals changed since it was planned (a takeover could not use it); then the new one,
    // planned with them, is loaded instead.
    const head = await this.snapshots.current();
    if (head && head.id !== f.snapshotId && head.id !== this.#checked) {
      this.#checked = head.id;
      const changed = otherGoals(f.planned, await this.plannedNow());
      if (changed) {
        this.#followed = undefined;
        this.bus.logger.info({ why: changed }, 'standby: graph dropped; loading the new snapshot');
        return this.#load();
      }
    }
    const tail = await tailSince(f.artefacts.kv, this.traces, f.marks);
    if (typeof tail === 'string') {
      // A bucket made again: start over from the snapshot (the next round).
      this.#followed = undefined;
      this.bus.logger.info({ why: tail }, 'standby: graph dropped; loading it again');
      return;
    }
    this.#apply(f.dm, () => tail.apply(f.dm, f.artefacts, f.passes, this.bus.logger));
    f.marks = tail.marks;
    f.keys += tail.keys.artefacts + tail.keys.traces;
  }

  /** Applies a change to the graph at once (its warnings logged: nothing runs on a standby). */
  #apply(dm: DependencyManager, change: () => void): void {
    for (const w of dm.batch(change).warnings)
      this.bus.logger.warn({ code: w.code, paths: w.paths, tasks: w.tasks }, w.message);
  }

  /**
   * Stops following and gives the held graph as a restore state whose fill() applies the keys
   * written since the last round; undefined (logged) when there is none or it cannot stand for
   * the buckets now (the caller restores cold).
   */
  async take(planned: PlannedWith): Promise<RestoreState | undefined> {
    this.#stopped = true;
    clearInterval(this.#timer);
    await this.#round;
    const f = this.#followed;
    this.#followed = undefined;
    const cold = (why: string) => {
      this.bus.logger.info({ why }, 'standby: no warm graph; restoring from KV');
      return undefined;
    };
    if (!f) return cold('no graph snapshot loaded while standing by');
    const changed = otherGoals(f.planned, planned);
    if (changed) return cold(changed);
    const tail = await tailSince(f.artefacts.kv, this.traces, f.marks);
    if (typeof tail === 'string') return cold(tail);
    const { dm, artefacts, passes } = f;
    const logger = this.bus.logger;
    return {
      from: 'standby',
      dm,
      artefacts,
      passes,
      marks: tail.marks,
      tail: tail.keys,
      resnapshot: longTail(f.keys + tail.keys.artefacts + tail.keys.traces, artefacts.size),
      planned: f.planned.declarations,
      fill() {
        tail.apply(dm, artefacts, passes, logger);
      },
    };
  }
}
