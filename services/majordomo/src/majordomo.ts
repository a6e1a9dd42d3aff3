import {
  type Bus,
  ensureProjectStreams,
  type Logger,
  type MessageContext,
  type Service,
  type TypedKv,
} from '@computepods/bus';
import { type ChangeResult, type DependencyManager, projectionKey } from '@computepods/depgraph';
import {
  type ArtefactRecord,
  type ArtefactStatus,
  BuildResult,
  buckets,
  CanBuildFrom,
  type FilesChanged,
  type Rule,
  RulesDeclared,
  type StatusReply,
  StatusRequest,
  streams,
  subjects,
  TaskTrace,
} from '@computepods/protocol';
import { z } from 'zod';
import type { ArtefactManager, Removals } from './artefacts.js';
import { askHowToBuild } from './ask-chefs.js';
import { Auxiliaries } from './auxiliaries.js';
import type { MajorDomoConfig } from './config.js';
import { compiledAlready, planText, usableDeclaration } from './declaration.js';
import { Dispatcher, type InFlight, type Leadership } from './dispatcher.js';
import { FileOrder } from './file-order.js';
import { GoalRules, goalRuleId, goalSpec } from './goals.js';
import { stepResults } from './group-results.js';
import { limitHeapGrowth } from './heap-growth.js';
import { NotLeaderError } from './lease.js';
import { watchChefLiveness } from './liveness.js';
import { checkPodSubject } from './pod-subject.js';
import { ProjectState } from './project-state.js';
import { ProjectQueries, UnknownArtefactError } from './queries.js';
import { RecentResults } from './recent-results.js';
import { resolveGoal } from './resolve-goal.js';
import {
  changedChefs,
  fromBuckets,
  fromSnapshot,
  plannedWith,
  type RestoreState,
  takeSnapshot,
  unparsed,
  validDeclarations,
} from './restore-state.js';
import { resultRecordsSpec } from './result-records.js';
import { type DeclaredRules, type OwnedRule, RuleRegistry } from './rules.js';
import { RulesWatch } from './rules-watch.js';
import { compactSnapshots } from './snapshot-compaction.js';
import { type Loaded, SnapshotStore } from './snapshot-store.js';
import { AttemptStopper } from './stop-attempts.js';
import { recordSuccess, type SuccessRecords } from './success-records.js';
import type { WarmStandby } from './warm-standby.js';

/** A started MajorDomo: stop() ends its consumers and watches (its bus is main.ts's to close). */
export interface RunningMajorDomo extends Service {
  readonly md: MajorDomo;
  /** What the graph was restored from, and the keys read after the snapshot (when one was used). */
  readonly restored: { from: RestoreState['from']; tail?: { artefacts: number; traces: number } };
  /** The one watch of the rules bucket, for its other readers (main.ts: chef replicas). */
  readonly rulesWatch: RulesWatch;
}

export type { Leadership } from './dispatcher.js';

/**
 * MajorDomo: the DependencyManager (packages/depgraph) fed by file changes, chef rules and build
 * results; the ArtefactManager (KV records); and the Dispatcher (dispatcher.ts) that puts build
 * requests on each chef's work queue. All durable state lives in NATS (artefact records, task
 * traces, rules, results); the graph itself is derived and rebuilt from it after a restart.
 * REST and the NATS API ask it through `queries` (queries.ts); the rest is its own.
 */
export class MajorDomo {
  private readonly rules: RuleRegistry;
  readonly #builds: Dispatcher;
  /** What REST (http.ts) and the NATS API (api.ts) ask of this MajorDomo. */
  readonly queries: ProjectQueries;
  /** The result cache: results this MajorDomo stored (recent-results.ts). */
  readonly #recent = new RecentResults();
  /** Builds whose result could not be recorded, their tasks planned again (#applyResult). */
  readonly #replanned = new Set<string>();
  /**
   * The watcher's latest look at each output of a build in flight, by task: taken up once its
   * result is applied (#fileHash then drops it if older than or equal to what the build wrote).
   */
  readonly #deferred = new Map<
    string,
    Map<string, { sha256: string; size: number; pod: string; mtimeNs?: string; seq: number }>
  >();
  /** Which events of a file batch delivered again are old news (FileOrder). */
  readonly #fileOrder: FileOrder;
  /** Each chef's declaration as last applied (planText). */
  readonly #declared = new Map<string, string>();
  readonly #aux = new Auxiliaries();
  #stopping = false;
  /** Set in standby mode: every dispatch goes through the fence, nothing is done once lost. */
  readonly #leader: Leadership | undefined;
  /** Whether the project takes new builds (`cpctrl project update P --active false` stops them). */
  readonly projectState = new ProjectState();
  /** Where a successful build's records go (success-records.ts). */
  readonly #records: SuccessRecords;

  private constructor(
    private readonly bus: Bus,
    private readonly cfg: MajorDomoConfig,
    private readonly dm: DependencyManager,
    private readonly artefacts: ArtefactManager,
    /**
     * The traces bucket, written with no parse: a trace is built here from the graph's hashes
     * and a validated result, and parsed where it is read back (a restart's listing or tail).
     * Its parse for the write was 2.5 % of MajorDomo's CPU in pnpm bench cbuild's clean build.
     */
    private readonly traces: TypedKv<z.ZodType<TaskTrace>>,
    private readonly goals: GoalRules,
    private readonly logger: Logger,
    leader: Leadership | undefined,
  ) {
    this.rules = new RuleRegistry(logger);
    this.#leader = leader;
    this.#records = { dm, traces, artefacts, logger };
    const stopper = new AttemptStopper(bus, logger);
    this.#fileOrder = new FileOrder({
      bus,
      stream: streams.files(cfg.project),
      logger,
      seqOf: (path) => artefacts.get(path)?.fileSeq,
    });
    this.#builds = new Dispatcher({
      bus,
      cfg,
      dm,
      artefacts,
      results: this.#recent,
      rules: this.rules,
      goals,
      projectState: this.projectState,
      logger,
      leader,
      applyChange: (res, cid) => this.#handleChange(res, cid),
      // Inside the serial queue (a pump): stored before the pump goes on, as a chef's result is
      // before it is acknowledged.
      applyCached: async (f, result, cid) => (await this.#applyResult(f, result, cid)).stored,
      serial: (fn) => this.#serial(fn),
      plan: (cid) => this.#pump(cid),
      stopAttempts: (buildId, giveUpMs, unrun) => stopper.stop(buildId, giveUpMs, unrun),
    });
    // While builds are in flight the next request's announcement comes soon: a result's outputs
    // wait for it (artefacts.ts holdWhile).
    artefacts.holdWhile(() => this.#builds.size > 0);
    this.queries = new ProjectQueries({
      config: cfg,
      dm,
      artefacts,
      status: (req) => this.#status(req),
      builds: () => this.#builds.builds(),
      requestBuild: (path, force, cid) => this.#requestBuild(path, force, cid),
      cancelBuild: (taskId, cid) => this.#serial(() => this.#builds.cancelByRequest(taskId, cid)),
    });
  }

  /**
   * The graph, records and rules as they are, for tests that compare MajorDomos (a restore's
   * against another's); not for the adapters, which ask `queries`.
   */
  inspect(): {
    dm: DependencyManager;
    artefacts: ArtefactManager;
    rules: RuleRegistry;
    traces: TypedKv<z.ZodType<TaskTrace>>;
  } {
    return { dm: this.dm, artefacts: this.artefacts, rules: this.rules, traces: this.traces };
  }

  static async start(
    bus: Bus,
    cfg: MajorDomoConfig,
    leader?: Leadership,
    warm?: WarmStandby,
  ): Promise<RunningMajorDomo> {
    const p = cfg.project;
    const t0 = performance.now();
    // Said first: a big project's restore takes seconds, and a silent process looks hung.
    bus.logger.info('restoring the graph from KV');
    // Opened at once: each open is a round trip or two, and a restart waits for all of them.
    // The snapshot (MiBs in parts) is read as soon as its bucket is open, while the others open;
    // a warm standby taking over holds the graph already (warm-standby.ts): no snapshot to read.
    const opening = SnapshotStore.open(bus, cfg.stateDir);
    const load = () =>
      opening
        .then((store) => store.load())
        .catch((err: Error): Loaded => ({ why: `not read: ${err.message}` }));
    const loading = warm ? undefined : load();
    const [traces, rulesKv, goalsKv, snapshots] = await Promise.all([
      bus.kv(buckets.traces(p), TaskTrace),
      bus.kv(buckets.rules(p), RulesDeclared),
      bus.kv(buckets.goals(p), CanBuildFrom),
      opening,
      ensureProjectStreams(bus, p),
      // Results are heard from the builds bucket's stream: its durable is made (its bucket first,
      // when no chef has made it) before any request is sent (result-records.ts).
      bus
        .kv(buckets.builds(p), BuildResult)
        .then(() => bus.ensureConsumer(resultRecordsSpec(p, IN_FLIGHT))),
    ]);
    const goals = new GoalRules(goalsKv);
    // The small buckets at once with the snapshot: each read waits mostly on the server.
    const [stored, answers, loaded] = await Promise.all([
      unparsed(rulesKv).entries(),
      goals.load(),
      loading,
    ]);
    const tRead = performance.now();
    const texts = new Map<string, string>();
    const declarations = validDeclarations(
      stored,
      loaded && 'snapshot' in loaded ? loaded.snapshot.meta.declarations : undefined,
      bus.logger,
      texts,
    );
    const planned = plannedWith(declarations, answers, texts);
    let snapshotRead: string | undefined;
    const fromStored = async () => {
      const stored = loaded ?? (await load());
      if ('snapshot' in stored) snapshotRead = stored.snapshot.readFrom;
      return fromSnapshot(bus, cfg, traces, stored, planned);
    };
    // Every record parsed makes garbage a snapshot load does not: a full restore runs under the
    // configured heap growth (main.ts runs the restore under V8's own, heap-growth.ts), where V8's
    // own took its resident memory from 361 to 660 MiB at 100k artefacts (pnpm bench scale).
    const fromEveryRecord = () => {
      limitHeapGrowth(cfg.heapGrowingPercent);
      return fromBuckets(bus, cfg, traces);
    };
    const state = (await warm?.take(planned)) ?? (await fromStored()) ?? (await fromEveryRecord());
    const tKv = performance.now();
    const { artefacts, passes } = state;
    const md = new MajorDomo(
      bus,
      cfg,
      state.dm,
      artefacts,
      traces.withSchema(z.custom<TaskTrace>()),
      goals,
      bus.logger,
      leader,
    );
    await md.projectState.watch(bus, p, () => void md.#serial(() => md.#pump('re-activated')));

    // The rules and goals into the graph, with what the state left for the batch (the records
    // and traces of a full restore, the keys written since a snapshot), as one batch: the
    // graph's dirtiness evaluated once at the end, not after each of the 100,000s of calls. A
    // snapshot's graph has the rules it was planned with: only a change of them is applied
    // (#restoreRules), and goals of the same rule change nothing.
    const orphanGoals: CanBuildFrom[] = [];
    const rulesChanged = state.planned
      ? changedChefs(state.planned, planned.declarations)
      : undefined;
    if (rulesChanged?.length)
      bus.logger.info(
        { chefs: rulesChanged, from: state.from },
        'graph planned with other rules; applying the change to it',
      );
    const restored = md.dm.batch(() => {
      md.#restoreRules(declarations, state.planned, planned.declarations);
      for (const answer of answers) {
        if (!md.rules.chefs().includes(answer.chef)) md.#orphanGoal(answer, orphanGoals);
        else {
          try {
            md.#addGoal(answer, 'restart');
          } catch (err) {
            // Stored by an older MajorDomo, say: asked again instead.
            bus.logger.warn(
              { goal: answer.goal, err: (err as Error).message },
              'goal not restored',
            );
            md.#orphanGoal(answer, orphanGoals);
          }
        }
      }
      state.fill();
    });
    md.#handleChange(restored, 'restart');
    // A cycle in the middle of a fixpoint goes on with the pass it was in (not from pass 1).
    for (const { taskId, pass, round } of passes.values())
      md.#handleChange(md.dm.restorePass(taskId, pass, round), 'restart');
    // A cycle reported as not converging stays so until an edit: no new passes for a restart.
    const stuck: Record<string, number> = {};
    for (const rec of artefacts.withStatus('not_converging'))
      if (rec.passes) stuck[rec.path] = rec.passes;
    md.#handleChange(md.dm.restoreNonConvergence(stuck), 'restart');
    md.#builds.restoreHolds();
    const tRestored = performance.now();
    await md.#reclassify('restart');
    const tReclassified = performance.now();
    await md.#pump('restart');
    const tPlanned = performance.now();
    for (const answer of orphanGoals) void md.#reassign(answer, 'restart');
    // Taken now, before any file change or result is applied: the graph is the restore's, its
    // records and traces those of the buckets at the marks (and writes since, which a restart
    // replays). Stored in the background (stop() waits for it); the next start reads it and the
    // keys written since.
    let tSnapshot = tPlanned;
    let saving: Promise<unknown> = Promise.resolve();
    if (state.resnapshot || rulesChanged?.length) {
      const taken = takeSnapshot(md.dm, artefacts, passes, planned, cfg.passLimit);
      tSnapshot = performance.now();
      saving = snapshots.save(taken.meta, taken.graph, state.marks).then(
        (head) =>
          bus.logger.info(
            { bytes: head.bytes, parts: head.parts, artefacts: head.artefactCount },
            'graph snapshot stored',
          ),
        (err: Error) => bus.logger.warn({ err: err.message }, 'graph snapshot not stored'),
      );
    }

    // Invalid values are ignored, not read as deletes (that retired a chef's rules).
    const rulesWatch = await RulesWatch.start(rulesKv, declarations, bus.logger);
    const stopRules = await rulesWatch.watchValid((chef, decl) => {
      void md.#serial(async () => {
        const retired = md.#applyRules(chef, decl);
        if (!retired) return; // a heartbeat: the same declaration again
        await md.#reclassify('rules');
        await md.#pump();
        for (const answer of retired) void md.#reassign(answer, 'rules');
      });
    });
    const stopLiveness = await watchChefLiveness(
      bus,
      rulesWatch,
      cfg.chefTimeoutMs,
      cfg.chefPingMs,
    );
    const stopCompaction = compactSnapshots({
      bus,
      cfg,
      artefacts: artefacts.kv,
      traces,
      rules: rulesKv,
      goals,
      snapshots,
      quiet: () => !md.#stopping && md.#builds.size === 0 && !md.#busy(),
    });
    // STORED: a message is applied in the serial queue (graph, records in memory, the builds it
    // makes ready requested) and the queue goes on while its records are written; it is
    // acknowledged once they are stored, so a MajorDomo killed -9 before that gets it again (and
    // re-plans from the records it has). A result's next pass is requested a round trip sooner,
    // and the watcher's look at an auxiliary (.fls, .blg) no longer holds the queue ahead of the
    // result that follows it (pnpm bench e2e's LaTeX part, #15). Each consumer hands up to
    // IN_FLIGHT messages over at once, so the next is applied while one's writes are stored; the
    // queue takes them in delivery order (nothing is awaited before a handler joins it).
    // ACKS: a message is acknowledged once what it changed is written, with a plain ack. Waiting
    // for the server to confirm each ack cost a reply message per result and per file batch (pnpm
    // bench cbuild, #15) and held the queue's next message for that round trip, for nothing a
    // confirmation could act on: it only logged a warning, and an ack that never arrives (a kill
    // -9 before it left, a dropped connection) brings the message back after the ack wait,
    // confirmed or not. A result delivered again is for a build no longer in flight (ignored).
    const files = await bus.consume({
      stream: streams.files(p),
      durable: 'majordomo-files',
      accept: ['files.changed'],
      // Plain acks (no round trip each; ACKS below says why that is safe here).
      confirmAck: false,
      concurrency: IN_FLIGHT,
      handler: async (msg, ctx) => {
        checkPodSubject(p, ctx.subject, msg.body);
        const { stored } = await md.#serial(async () => {
          await md.#mustLead(); // a stale leader leaves it to the new one (nak)
          return md.onFilesChanged(msg.body, msg.cid, ctx);
        });
        await stored; // STORED above
      },
    });
    // A result, whichever way it came, acknowledged once its records are stored (STORED above).
    const onResult = async (result: BuildResult, cid?: string) => {
      const { stored } = await md.#serial(async () => {
        await md.#mustLead();
        return md.onBuildResult(result, cid);
      });
      await stored;
    };
    // Results as chefs store them (result-records.ts), and as build.result messages: those of
    // chefs asked by an earlier MajorDomo, or of an earlier version (they store and publish).
    const recordsConsumer = await bus.consume({
      ...resultRecordsSpec(p, IN_FLIGHT),
      records: true,
      accept: ['build.result'],
      confirmAck: false,
      concurrency: IN_FLIGHT,
      handler: (msg) => onResult(msg.body),
    });
    const resultsConsumer = await bus.consume({
      stream: streams.events(p),
      durable: 'majordomo-results',
      filterSubject: subjects.buildResult(p),
      accept: ['build.result'],
      confirmAck: false,
      concurrency: IN_FLIGHT,
      handler: (msg) => onResult(msg.body, msg.cid),
    });
    // Once restored: work held back while the lease's window was closed goes on when it reopens.
    leader?.lease.onRegained(() => {
      md.#serial(() => md.#pump('lease renewed')).catch((err: Error) =>
        bus.logger.warn({ err: err.message }, 'planning after the lease was renewed failed'),
      );
    });
    // Where a restart's time goes (pnpm bench scale reads it): KV reads, the graph, the first plan.
    const ms = (a: number, b: number) => Math.round(b - a);
    bus.logger.info(
      {
        artefacts: artefacts.size,
        rules: md.rules.all().size,
        from: state.from,
        ...(state.from === 'snapshot' ? { snapshotRead } : {}),
        tail: state.tail,
        restoreMs: {
          kv: ms(t0, tKv),
          // Of kv: the buckets opened, the snapshot, declarations and goals read (the rest of kv
          // is the graph and records loaded from the snapshot, with the keys written since).
          kv_read: ms(t0, tRead),
          graph: ms(tKv, tRestored),
          reclassify: ms(tRestored, tReclassified),
          plan: ms(tReclassified, tPlanned),
          snapshot: ms(tPlanned, tSnapshot),
          total: ms(t0, performance.now()),
          // This process's CPU since it started (bundle or sources loaded, connect, restore):
          // what a restart costs whatever the machine's load.
          cpu: cpuMs(),
        },
        memoryMiB: memoryMiB(),
      },
      'graph restored, consuming files and results',
    );
    return {
      md,
      restored: { from: state.from, ...(state.tail ? { tail: state.tail } : {}) },
      rulesWatch,
      stop: async () => {
        md.#stopping = true;
        md.#builds.stop();
        stopRules();
        rulesWatch.stop();
        stopLiveness();
        const compacted = stopCompaction();
        md.projectState.stop();
        await Promise.all([files.stop(), recordsConsumer.stop(), resultsConsumer.stop()]);
        await md.#queue;
        await Promise.allSettled(md.#storing);
        // Changes held for the next announcement (holdWhile) go now.
        md.artefacts.announceNow();
        // A snapshot being stored is finished: its head and its local copy both written.
        await Promise.all([saving, compacted]);
      },
    };
  }

  /** Throws NotLeaderError unless this MajorDomo leads (always leads when alone). */
  async #mustLead(): Promise<void> {
    const l = this.#leader;
    if (l && !(await l.lease.ensure()))
      throw new NotLeaderError(l.lease.id, l.lease.epoch, l.lease.lostTo ?? undefined);
  }

  #queue: Promise<unknown> = Promise.resolve();
  /** State changes queued or being applied (see status(): not idle while one is). */
  #changing = 0;

  /** Writes of changes applied and not yet stored (STORED in start()): tracked by #stored. */
  readonly #storing = new Set<Promise<void>>();

  /** A change queued, being applied, or whose writes are not stored yet: not idle. */
  #busy(): boolean {
    return this.#changing > 0 || this.#storing.size > 0;
  }

  /** `writes` tracked until they settle (#busy); a failure is the awaiting caller's, and handled. */
  #stored(writes: Promise<unknown>): Stored {
    const stored = writes.then(() => undefined);
    this.#storing.add(stored);
    const done = () => {
      this.#storing.delete(stored);
    };
    stored.then(done, done);
    return { stored };
  }

  /** Runs state changes one at a time: the graph is never seen half-updated. */
  #serial<T>(fn: () => Promise<T>): Promise<T> {
    this.#changing++;
    const next = this.#queue.then(fn, fn);
    const done = () => {
      this.#changing--;
    };
    this.#queue = next.then(done, done);
    return next;
  }

  /**
   * The declarations into the registry and the graph at a restore. A graph that came planned (a
   * snapshot's, a standby's) holds the rules of `planned`: the registry is set to those, the
   * graph untouched, then the declarations now are applied as a running MajorDomo applies a
   * changed one (only rules that differ are removed or added; a chef no longer declared, or
   * whose record is now skipped, is retired). It ends as a graph planned with them from nothing
   * (restore-rules-changed.test.ts), and unchanged rules are not compiled and added again.
   * `texts` is planText of each of `declarations` (plannedWith's): at 100k artefacts each pass of
   * planText over the 1,204 rules is a 757 KB JSON.stringify, and this took two.
   */
  #restoreRules(
    declarations: ReadonlyMap<string, { value: RulesDeclared }>,
    planned: Readonly<Record<string, string>> | undefined,
    texts: Readonly<Record<string, string>>,
  ): void {
    for (const [chef, text] of Object.entries(planned ?? {})) {
      // planText of a declaration MajorDomo parsed (the snapshot's head vouches for it). The
      // graph came with its rules compiled: those are not compiled again to be checked. A chef
      // whose stored declaration has this planText is registered from that one's chef and
      // rules (the same JSON), not from the text parsed again: at 100k artefacts a second copy
      // of the 1,204 rules, ~3 MiB kept and made while the restore's young generation is full.
      const now = declarations.get(chef)?.value;
      const decl: DeclaredRules =
        now && texts[chef] === text
          ? { chef: now.chef, rules: now.rules }
          : (JSON.parse(text) as DeclaredRules);
      const usable = usableDeclaration(chef, decl, this.logger, (r) => compiledAlready(this.dm, r));
      if (!usable?.decl) continue;
      this.rules.set(chef, usable.decl);
      this.#declared.set(chef, text);
    }
    const seeded = [...this.#declared.keys()];
    for (const [chef, { value }] of declarations) this.#applyRules(chef, value, texts[chef]);
    for (const chef of seeded) {
      const now = declarations.get(chef)?.value;
      if (!now || this.#declared.get(chef) !== (texts[chef] ?? planText(now)))
        this.#applyRules(chef, undefined);
    }
  }

  /** A stored goal whose chef is gone at a restore: out of the graph, asked again once restored. */
  #orphanGoal(answer: CanBuildFrom, orphans: CanBuildFrom[]): void {
    orphans.push(answer);
    // A planned graph (a snapshot's) holds it; never a declared rule of that id.
    const id = goalRuleId(answer);
    if (!this.rules.get(id)) this.#handleChange(this.dm.removeRule(id), 'restart');
  }

  /**
   * Applies a chef's declaration; returns the goals a retired chef built on demand, or undefined
   * when the declaration is the one already applied.
   */
  #applyRules(
    chef: string,
    decl: DeclaredRules | undefined,
    /** planText(decl) when the caller has it already. */
    known?: string,
  ): CanBuildFrom[] | undefined {
    // Chefs re-put an unchanged declaration as a heartbeat (liveness.ts), and a restarted chef
    // or another replica puts it with another $SRV id: with the same plan, nothing to apply.
    const text = decl && (known ?? planText(decl));
    if (text && this.#declared.get(chef) === text) return undefined;
    const usable = usableDeclaration(chef, decl, this.logger);
    if (!usable) return undefined;
    decl = usable.decl;
    if (text) this.#declared.set(chef, text);
    else this.#declared.delete(chef);
    const { before, after } = this.rules.set(chef, decl);
    for (const [id, owned] of before) {
      const now = after.get(id);
      if (!now || JSON.stringify(now) !== JSON.stringify(owned))
        this.#handleChange(this.dm.removeRule(id), 'rules');
    }
    for (const [id, owned] of after) {
      const was = before.get(id);
      if (was && JSON.stringify(was) === JSON.stringify(owned)) continue;
      this.#handleChange(this.dm.addRule(toSpec(owned)), 'rules');
    }
    this.logger.info(
      { chef, rules: decl?.rules.map((r) => r.id) ?? [] },
      decl ? 'chef rules declared' : 'chef rules retired',
    );
    if (decl) return [];
    // Its builds were cancelled above (the rules' removal): no end of them will be reported.
    this.#builds.chefRetired(chef);
    const retired = this.goals.ofChef(chef);
    for (const answer of retired) this.#dropGoal(answer, 'rules');
    return retired;
  }

  /** Puts a chosen "can build from" answer into the graph as a concrete rule. */
  #addGoal(answer: CanBuildFrom, cid: string): void {
    const spec = goalSpec(answer);
    this.goals.add(answer);
    this.#aux.name(`${spec.id}:`, answer.auxiliaries);
    this.#handleChange(this.dm.addRule(spec), cid);
  }

  #dropGoal(answer: CanBuildFrom, cid: string): void {
    const id = goalRuleId(answer);
    this.#aux.forget(`${id}:`);
    this.#handleChange(this.dm.removeRule(id), cid);
    void this.goals.remove(answer);
  }

  /**
   * "How to build" `goal`: asks every declared chef at once, takes the first by name among those
   * that can build it (a warning names the others) and plans with it. Returns why not when none
   * can.
   */
  async #learnHowToBuild(goal: string, cid: string): Promise<string | undefined> {
    const have = this.artefacts
      .all()
      .filter((r) => r.sha256 && !r.auxiliary)
      .map((r) => r.path)
      .slice(0, 10_000);
    const exists = new Set(have);
    const { adopt, conflicts, why } = await resolveGoal(goal, {
      ask: (g) =>
        askHowToBuild(
          this.bus,
          { goal: g, have },
          { chefs: this.rules.chefs(), deadlineMs: this.cfg.howToBuildMs, cid },
        ),
      known: (p) => exists.has(p) || this.#producerOf(p) !== undefined,
    });
    for (const c of conflicts)
      this.logger.warn(
        { ...c, cid },
        `chefs ${c.kept} and ${c.ignored} can both build ${c.goal}; using ${c.kept}'s (first by name)`,
      );
    if (why) return why;
    for (const answer of adopt) {
      try {
        goalSpec(answer);
      } catch (err) {
        return `chef ${answer.chef} answered for ${answer.goal} with a build that cannot be planned: ${(err as Error).message}`;
      }
    }
    await this.#serial(async () => {
      for (const answer of adopt) {
        if (this.#producerOf(answer.goal)) continue;
        this.#addGoal(answer, cid);
        await this.goals.store(answer);
        this.logger.info(
          { goal: answer.goal, chef: answer.chef, rule: answer.rule, from: answer.from, cid },
          'how to build: a chef can build it; planned',
        );
      }
      await this.#reclassify(cid);
    });
    return undefined;
  }

  /** A goal whose chef went away: asked again of the chefs still there. */
  async #reassign(answer: CanBuildFrom, cid: string): Promise<void> {
    if (this.#stopping) return;
    await this.goals.remove(answer);
    const why = await this.#learnHowToBuild(answer.goal, cid).catch((err: Error) => err.message);
    if (why) this.logger.warn({ goal: answer.goal, reason: why, cid }, 'no chef builds it now');
    else await this.#serial(() => this.#pump(cid));
  }

  /** Which task writes `path` as an auxiliary file, if any. */
  #auxiliaryOf(path: string, rules = this.#auxiliaryRules()): string | undefined {
    return this.#aux.taskOf(path, rules, (p) => this.dm.producerOf(p));
  }

  /** The rules that name auxiliary files. */
  #auxiliaryRules(): Rule[] {
    const out: Rule[] = [];
    for (const { rule } of this.rules.all().values()) if (rule.auxiliaries.length) out.push(rule);
    return out;
  }

  /** Records taken for sources that a rule now names as its auxiliaries become its products. */
  async #reclassify(cid: string): Promise<void> {
    // Once per pass, not per record (100,000s at a restart), and none when nothing could match.
    const rules = this.#auxiliaryRules();
    if (rules.length === 0 && !this.#aux.named) return;
    for (const rec of [...this.artefacts.records()]) {
      if (rec.auxiliary || rec.producer || !rec.sha256) continue;
      const task = this.#auxiliaryOf(rec.path, rules);
      if (!task) continue;
      this.#handleChange(this.dm.deleteArtefact(rec.path), cid);
      await this.artefacts.update(
        rec.path,
        { status: 'up_to_date', producer: task, auxiliary: true },
        cid,
      );
    }
  }

  /** Applies the side effects every graph change may ask for: cancellations and warnings. */
  #handleChange(res: ChangeResult, cid: string): void {
    for (const w of res.warnings)
      this.logger.warn({ code: w.code, paths: w.paths, tasks: w.tasks, cid }, w.message);
    this.#builds.inputsChanged(res.cancel, cid);
  }

  private async onFilesChanged(
    body: FilesChanged,
    cid: string,
    { sequence: seq, deliveries }: Pick<MessageContext, 'sequence' | 'deliveries'>,
  ): Promise<Stored> {
    // A batch delivered again is old news for the paths later batches spoke of (FileOrder).
    const order = await this.#fileOrder.judge(body, seq, deliveries, cid);
    // A changed file's record is written while the builds it makes ready are planned and
    // requested (graph and record in memory change at once): a round trip less before the
    // requests go out. The writes are stored before the batch is acknowledged (STORED in
    // start()), so a MajorDomo that dies before its records are stored gets the batch again.
    const writes: Promise<unknown>[] = [];
    const issue = (write: Promise<unknown>) => {
      // Seen by the caller's await; not an unhandled rejection while the loop awaits another event.
      write.catch(() => undefined);
      writes.push(write);
    };
    // The batch's deleted files: announced missing together once all their deletes are stored.
    const gone = this.artefacts.removals(cid);
    // The batch's changed files, logged in one line (a checkout brings thousands).
    const changed: string[] = [];
    try {
      for (const ev of body.events) {
        // A file gone leaves the graph at once; its record's delete is issued with the batch's
        // other writes, not awaited one by one (pnpm bench cbuild's warm clean: 403 outputs
        // deleted, a KV round trip each before the first build was planned).
        // A move is a delete and a creation: each side is news or not on its own.
        if (ev.kind === 'moved' && ev.from) {
          if (!order.stale(ev.from)) issue(this.#fileGone(ev.from, cid, gone, seq));
          else order.ignored(ev.from);
        }
        if (order.stale(ev.path)) {
          order.ignored(ev.path);
          continue;
        }
        if (ev.kind === 'deleted') {
          issue(this.#fileGone(ev.path, cid, gone, seq));
          continue;
        }
        this.#fileOrder.back(ev.path);
        if (!ev.sha256) continue;
        const auxOf = this.#auxiliaryOf(ev.path);
        if (auxOf) {
          issue(
            this.artefacts.update(
              ev.path,
              {
                status: 'up_to_date',
                sha256: ev.sha256,
                size: ev.size,
                producer: auxOf,
                auxiliary: true,
                pods: this.artefacts.podsWith(ev.path, ev.sha256, body.pod),
                fileSeq: seq,
              },
              cid,
            ),
          );
          continue;
        }
        const producer = this.#producerOf(ev.path);
        // A build in flight will report this output itself; its result is the authority. The look
        // is kept, not dropped: bytes written after the build's own (a killed runner's orphaned
        // task finishing late) must still count once the result is in.
        if (producer && this.#builds.has(producer)) {
          const looks = this.#deferred.get(producer) ?? new Map();
          looks.set(ev.path, {
            sha256: ev.sha256,
            size: ev.size,
            pod: body.pod,
            mtimeNs: ev.mtimeNs,
            seq,
          });
          this.#deferred.set(producer, looks);
          continue;
        }
        issue(this.#fileHash(ev.path, ev.sha256, ev.size, body.pod, cid, seq, ev.mtimeNs, changed));
      }
    } finally {
      // Closed whatever happens: a delete waiting on an open batch holds its path's writes.
      gone.close();
    }
    if (changed.length > 0)
      this.logger.info(
        { files: changed.length, paths: changed.slice(0, LOGGED_PATHS), cid },
        changed.length === 1 ? 'file changed' : 'files changed',
      );
    await this.#pump(cid);
    return this.#stored(Promise.all(writes));
  }

  /**
   * A pod holds `path` with these bytes: a change to plan from, or one more holder. Unless the
   * pod's file is older (`mtimeNs`) than the one a build wrote there and reported: then this is
   * a late look at an earlier write. The watcher's events and the chefs' results travel on
   * different streams, so under load the watcher's hash of pass 2's output of a cycle can arrive
   * after pass 3's result; taken as an edit it would restart the cycle, cancel its build in
   * flight and record bytes the workspace no longer has.
   */
  async #fileHash(
    path: string,
    sha256: string,
    size: number,
    pod: string,
    cid: string,
    /** The file batch's stream sequence; undefined: a chef's look (BuildResult.inputsNow). */
    seq: number | undefined,
    mtimeNs?: string,
    /** A file batch's changes so far: this one is added, and logged with them (at debug alone). */
    changed?: string[],
  ) {
    const rec = this.artefacts.get(path);
    if (rec?.sha256 === sha256) {
      await this.artefacts.heldBy(path, sha256, pod, cid);
      return;
    }
    const w = rec?.written;
    if (w && mtimeNs !== undefined && w.pod === pod && BigInt(mtimeNs) < BigInt(w.mtimeNs)) {
      this.logger.info(
        { path, sha256: sha256.slice(0, 12), mtimeNs, written: w.mtimeNs, cid },
        'file event older than the build output it would replace; ignored',
      );
      return;
    }
    const producer = this.#producerOf(path);
    if (changed) {
      changed.push(path);
      this.logger.debug({ path, sha256: sha256.slice(0, 12), cid }, 'file changed');
    } else this.logger.info({ path, sha256: sha256.slice(0, 12), cid }, 'file changed');
    this.#handleChange(this.dm.setArtefact(path, sha256), cid);
    // An output of a task held by a cancel stays cancelled (its record keeps the hold's key).
    const held = producer !== undefined && this.dm.held(producer);
    await this.artefacts.update(
      path,
      {
        status: held ? 'cancelled' : producer ? 'stale' : 'source',
        sha256,
        cutoff: sha256,
        // Of the bytes it replaces.
        projections: undefined,
        size,
        pods: [pod],
        // Bytes from outside, not from a build.
        written: undefined,
        ...(seq === undefined ? {} : { fileSeq: seq }),
        ...(producer ? { producer } : {}),
      },
      cid,
    );
  }

  async #fileGone(path: string, cid: string, gone: Removals, seq: number): Promise<void> {
    this.#fileOrder.gone(path, seq);
    if (!this.artefacts.get(path)) return;
    this.#handleChange(this.dm.deleteArtefact(path), cid);
    await gone.remove(path);
  }

  #producerOf(path: string): string | undefined {
    return this.dm.producerOf(path);
  }

  /** `cid`: the message's; a stored result (result-records.ts) has none, and takes its request's. */
  private async onBuildResult(result: BuildResult, messageCid?: string): Promise<Stored> {
    const f = this.#builds.take(result.taskId, result.buildId);
    const cid = messageCid ?? f?.cid ?? result.buildId;
    if (!f) {
      this.logger.info(
        { taskId: result.taskId, buildId: result.buildId, cid },
        'result for a build no longer wanted; ignored',
      );
      // The redelivery of a result that could not be recorded (#applyResult) lands here, and
      // its task, planned again, may have no other event to dispatch it; so does the end of a
      // cancelled build its step's next build waited for (Dispatcher.ended). Only then: a build
      // cancelled on request is not sent again by its own result.
      const replanned = this.#replanned.delete(result.buildId);
      if (this.#builds.ended(result.taskId, result.buildId) || replanned) await this.#pump(cid);
      return NOTHING_TO_STORE;
    }
    // The next pass is planned and requested while the result's records are written (STORED in
    // start()): they are in memory already, and the result is acknowledged once they are stored.
    const applied = f.group
      ? await this.#applyGroupResult(f.group, result, cid)
      : await this.#applyResult(f, result, cid);
    for (const step of f.group ?? [f]) {
      const looks = this.#deferred.get(step.task.id);
      this.#deferred.delete(step.task.id);
      for (const [path, l] of looks ?? [])
        await this.#fileHash(path, l.sha256, l.size, l.pod, cid, l.seq, l.mtimeNs);
    }
    await this.#pump(cid);
    return applied;
  }

  /**
   * A group build's result (dispatcher.ts #dispatchGroup): a success is each step's own
   * (stepResults), applied as a build of that step alone; anything else sends every step back to
   * be built on its own, where a failure is the step's own and names it.
   */
  async #applyGroupResult(
    group: readonly InFlight[],
    result: BuildResult,
    cid: string,
  ): Promise<Stored> {
    const split = result.status === 'succeeded' ? stepResults(group, result) : undefined;
    if (split === undefined || typeof split === 'string') {
      this.logger.warn(
        {
          taskId: result.taskId,
          buildId: result.buildId,
          steps: group.length,
          status: result.status,
          reason: split ?? result.error ?? result.status,
          cid,
        },
        'a group build did not succeed; its steps are built again one by one',
      );
      for (const f of group) {
        this.#builds.solo(f.task.id);
        this.#handleChange(this.dm.cancelled(f.task.id, f.task.run), cid);
      }
      for (const [path, now] of Object.entries(result.inputsNow))
        await this.#fileHash(path, now.sha256, now.size, result.pod, cid, undefined, now.mtimeNs);
      return NOTHING_TO_STORE;
    }
    const stored: Promise<void>[] = [];
    for (const [f, r] of split) stored.push((await this.#applyResult(f, r, cid)).stored);
    return this.#stored(Promise.all(stored));
  }

  /**
   * Applies a build's result to the graph and the records in memory, and issues its writes:
   * `stored` settles once they are stored (or one failed: then the task is planned again).
   */
  async #applyResult(f: InFlight, result: BuildResult, cid: string): Promise<Stored> {
    const { task } = f;
    if (result.status !== 'succeeded') {
      const reason = result.error ?? result.status;
      this.logger.warn(
        { taskId: task.id, status: result.status, reason, cid },
        'build did not succeed',
      );
      // Cancelled by the chef with no other bytes to plan from (an input no pod holds): planned
      // again at once it spun ~1,000 requests a second. Held as failed and retried with backoff.
      const hold =
        result.status === 'cancelled' && Object.keys(result.inputsNow).length === 0
          ? this.#builds.holdCancelled(task)
          : undefined;
      this.#handleChange(
        result.status === 'failed' || hold !== undefined
          ? this.dm.failed(task.id, hold ? `${reason} (${hold})` : reason, task.run)
          : this.dm.cancelled(task.id, task.run),
        cid,
      );
      for (const out of task.outputs) {
        await this.artefacts.update(
          out,
          {
            status: result.status === 'failed' || hold ? 'failed' : 'stale',
            error: hold ? `${reason} (${hold})` : reason,
            producer: task.id,
          },
          cid,
        );
      }
      // The chef found other bytes than planned with: plan from those, or the same request
      // would be sent (and cancelled) again and again.
      for (const [path, now] of Object.entries(result.inputsNow))
        await this.#fileHash(path, now.sha256, now.size, result.pod, cid, undefined, now.mtimeNs);
      return NOTHING_TO_STORE;
    }
    this.#builds.succeeded(task.id);
    const res = this.dm.completed(task.id, {
      outputs: result.cutoff,
      discovered: result.discovered,
      run: task.run,
      projections: result.projections,
      inputProjections: result.inputProjections,
    });
    this.#handleChange(res, cid);
    if (res.stale) return NOTHING_TO_STORE;
    const recorded = recordSuccess(this.#records, f, result, res, cid);
    // Cached once stored: a result not recorded is planned again and asked of its chef.
    recorded.then(() => this.#recent.add(result, f.ownBuildId)).catch(() => undefined);
    const written = recorded.catch((err: Error) => {
      // The graph took the result and the buckets did not all (a write failed: NATS down past
      // its timeout, say). The redelivered result would be ignored, its build no longer in
      // flight, and the outputs' records would keep the bytes before it while the graph calls
      // them up to date (fresh-clone CI, chaos mixed storm: "bytes right, MajorDomo's record
      // has" another hash). So the graph forgets the run: the task is planned again, and its
      // build answered by the chef (its recorded result, or a run). In the serial queue, ahead
      // of the result's redelivery (the caller fails it once this is queued).
      void this.#serial(async () => {
        this.#handleChange(this.dm.forget(task.id), cid);
        this.#replanned.add(result.buildId);
      }).catch((e: Error) =>
        this.logger.error({ taskId: task.id, err: e.message, cid }, 'forgetting the run failed'),
      );
      this.logger.warn(
        { taskId: task.id, buildId: result.buildId, err: err.message, cid },
        'build result not recorded (a write failed); its task is planned again',
      );
      throw err;
    });
    return this.#stored(written);
  }

  /** Dispatches ready tasks up to the build limit, then brings the records in line with the graph. */
  async #pump(cid = 'plan'): Promise<void> {
    if (await this.#builds.pump(cid)) await this.#refreshStatuses(cid);
  }

  /**
   * Brings the records' states in line with the graph: those of the paths whose state may have
   * changed since the last time (the graph says which), or all of them when it cannot say (after
   * a restore, a rule change). At 100,000 records a pass over all took 60-240 ms after every
   * change, and the next file event waited for it. The writes go out REFRESH_WINDOW at a time
   * (one path each), not one round trip after another: a pdflatex pass's three outputs made
   * stale were three round trips of the serial queue.
   */
  async #refreshStatuses(cid: string): Promise<void> {
    const touched = this.dm.takeTouched();
    // Every record, when the graph cannot say which: each one's path and state as the index
    // holds them when reached (not looked up again by path: 100,000s of map reads at a restart,
    // nor made: a snapshot's records are made when first read, RecordIndex.states).
    const records = touched ? this.#touchedRecords(touched) : this.artefacts.states();
    let window: Promise<unknown>[] = [];
    for (const rec of records) {
      if (rec.auxiliary) continue;
      const path = rec.path;
      const status = this.#statusOf(path);
      if (!status || status === rec.status) continue;
      window.push(this.artefacts.update(path, { status }, cid));
      if (window.length < REFRESH_WINDOW) continue;
      await Promise.all(window);
      window = [];
    }
    await Promise.all(window);
  }

  /** The records of the touched paths, each read when reached. */
  *#touchedRecords(paths: readonly string[]): Generator<ArtefactRecord> {
    for (const path of paths) {
      const rec = this.artefacts.get(path);
      if (rec) yield rec;
    }
  }

  #statusOf(path: string): ArtefactStatus | undefined {
    const producer = this.#producerOf(path);
    if (producer && this.#builds.has(producer)) return undefined; // queued/building: set on dispatch
    const s = this.dm.artefactState(path);
    switch (s) {
      case 'source':
        return 'source';
      case 'up_to_date':
        return 'up_to_date';
      case 'dirty':
        return 'stale';
      case 'building':
        return undefined;
      case 'failed':
        return 'failed';
      case 'cancelled':
        return 'cancelled';
      case 'not_converging':
        return 'not_converging';
      case 'missing':
        return 'missing';
    }
  }

  /**
   * What MajorDomo is doing: a summary (counts kept as records change), with one page of the
   * artefact records and the queued task ids when asked (`artefacts`).
   */
  #status(req: StatusRequest = StatusRequest.parse({})): StatusReply {
    const st = this.dm.status();
    const blocked = new Set(st.blocked);
    const queued = st.dirty.filter((t) => !this.#builds.has(t) && !blocked.has(t));
    const page = req.artefacts
      ? this.artefacts.page(req.limit, req.cursor, req.prefix)
      : { records: [] };
    const reply: StatusReply = {
      project: this.cfg.project,
      // A change still being applied (a result whose records are being written, say) is not
      // idle: the graph may already be settled while its artefact records are not yet.
      idle: this.#builds.size === 0 && st.idle && !this.#busy(),
      summary: {
        artefacts: this.artefacts.size,
        byStatus: this.artefacts.counts(),
        running: this.#builds.size,
        queued: queued.length,
      },
      running: this.#builds.taskIds(),
      queued: req.artefacts ? queued : [],
      nonConvergent: st.nonConvergent.map((n) => ({
        component: n.component,
        artefacts: [...n.artefacts],
        passes: n.passes,
      })),
      artefacts: page.records,
      ...(page.next === undefined ? {} : { next: page.next }),
    };
    return reply;
  }

  /** Requests a (re)build of one artefact: dispatches what it needs; with force, forgets its trace. */
  async #requestBuild(
    path: string,
    force: boolean,
    cid: string,
  ): Promise<{ status: string; message: string }> {
    this.projectState.check();
    // A goal no declared rule produces: the chefs are asked how to build it (outside the serial
    // queue: gathering answers takes up to the deadline).
    let why: string | undefined;
    if (!this.#producerOf(path) && !this.artefacts.get(path))
      why = await this.#learnHowToBuild(path, cid);
    return this.#serial(async () => {
      const producer = this.#producerOf(path);
      const rec = this.artefacts.get(path);
      if (!producer) {
        if (rec?.auxiliary)
          return { status: rec.status, message: `written by ${rec.producer} beside its outputs` };
        if (rec) return { status: rec.status, message: 'a source file: nothing to build' };
        throw new UnknownArtefactError(
          path,
          `no rule produces ${path} and it is not a known source${why ? ` (${why})` : ''}`,
        );
      }
      if (force) {
        this.#builds.force(producer);
        await this.traces.delete(producer).catch(() => undefined);
        this.#handleChange(this.dm.forget(producer), cid);
      } else this.#handleChange(this.dm.release(producer), cid);
      await this.#pump(cid);
      const now = this.artefacts.get(path);
      const inflight = this.#builds.has(producer);
      return {
        status: inflight ? 'queued' : (now?.status ?? 'missing'),
        message: inflight
          ? `building with ${producer}`
          : now?.status === 'up_to_date'
            ? 'already up to date'
            : '',
      };
    });
  }
}

/** A change applied whose writes are in flight: `stored` settles once they are stored. */
interface Stored {
  readonly stored: Promise<void>;
}

const NOTHING_TO_STORE: Stored = { stored: Promise.resolve() };

/** Messages each of MajorDomo's consumers hands over before the first is acknowledged (STORED). */
const IN_FLIGHT = 4;

/** Paths a file batch's 'files changed' line names at most (debug names each). */
const LOGGED_PATHS = 5;

/** Status writes #refreshStatuses has in flight at most. */
const REFRESH_WINDOW = 64;

function toSpec(owned: OwnedRule) {
  const { rule } = owned;
  return {
    id: rule.id,
    inputs: rule.inputs,
    optionalInputs: rule.optionalInputs,
    outputs: rule.outputs,
    ...(rule.passLimit ? { passLimit: rule.passLimit } : {}),
    ...(rule.projections.length
      ? {
          projections: Object.fromEntries(rule.projections.map((p) => [p.input, projectionKey(p)])),
        }
      : {}),
    meta: { chef: owned.chef },
  };
}

/** This process's CPU time so far (user and system, all threads), in ms. */
function cpuMs(): number {
  const { user, system } = process.cpuUsage();
  return Math.round((user + system) / 1000);
}

/** Where this process's memory is (a restore says it once ready; pnpm bench scale reads it). */
function memoryMiB(): { rss: number; heapUsed: number; heapTotal: number; external: number } {
  const m = process.memoryUsage();
  const mib = (b: number) => Math.round(b / 1048576);
  return {
    rss: mib(m.rss),
    heapUsed: mib(m.heapUsed),
    heapTotal: mib(m.heapTotal),
    external: mib(m.external),
  };
}
