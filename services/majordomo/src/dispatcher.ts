import { randomUUID } from 'node:crypto';
import type { Bus, Logger } from '@computepods/bus';
import type { ChangeResult, DependencyManager, TaskInstance } from '@computepods/depgraph';
import { type BuildRequested, type BuildResult, subjects } from '@computepods/protocol';
import type { ArtefactManager } from './artefacts.js';
import { buildId, groupBuildId } from './build-id.js';
import type { MajorDomoConfig } from './config.js';
import { dispatchRefusal } from './dispatch-refusal.js';
import type { DispatchFence } from './fence.js';
import type { GoalRules } from './goals.js';
import { groupSizes } from './group-packing.js';
import { type LeaderLease, NotLeaderError } from './lease.js';
import type { ProjectState } from './project-state.js';
import type { BuildInFlight } from './queries.js';
import type { RecentResults } from './recent-results.js';
import { RetryBackoff } from './retry-backoff.js';
import type { RuleRegistry } from './rules.js';
import type { Stopped, UnrunTask } from './stop-attempts.js';

/** A leader's lease and fence (standby mode, CP_MAJORDOMO_HA; see lease.ts and fence.ts). */
export interface Leadership {
  readonly lease: LeaderLease;
  readonly fence: DispatchFence;
}

/** A build requested of a chef and not yet answered. */
export interface InFlight {
  readonly buildId: string;
  readonly task: TaskInstance;
  readonly chef: string;
  readonly cid: string;
  /** The input hashes the chef was asked to build with (file hashes, not cutoff digests). */
  readonly inputs: Readonly<Record<string, string>>;
  /** The builds stream's sequence of the request last sent, once sent (a cancel names it). */
  sent?: Promise<number | undefined>;
  /**
   * A group build's steps (group-packing.ts), the same array in each step's entry, the request's
   * own step first; `buildId` is the group's. Absent: a build of this step alone.
   */
  readonly group?: readonly InFlight[];
  /** A group step's own build key: the result cache keeps the step's part of the result under it. */
  readonly ownBuildId?: string;
}

/**
 * A build cancelled while in flight whose end no chef has reported yet (its result: cancelled,
 * or whatever it came to first). Its task may still run: the chef kills it once the cancel
 * reaches it, and another replica of the chef could take the step's next build meanwhile.
 */
interface WindingDown {
  readonly buildId: string;
  /** The steps waiting on it: the build's own, or a group's (one entry, under each step). */
  readonly steps: readonly string[];
  readonly chef: string;
  /** Its task as far as MajorDomo knows it, to close it should it still be queued. */
  readonly unrun: UnrunTask | undefined;
  readonly timer: NodeJS.Timeout;
  /** Its wait is over (no end came in time, or its chef retired): its tasks are being stopped. */
  releasing?: boolean;
}

/** What the dispatcher works with: MajorDomo's graph, records and rules, and two of its steps. */
export interface DispatcherParts {
  readonly bus: Bus;
  readonly cfg: MajorDomoConfig;
  readonly dm: DependencyManager;
  readonly artefacts: ArtefactManager;
  /** The result cache (recent-results.ts). */
  readonly results: RecentResults;
  readonly rules: RuleRegistry;
  readonly goals: GoalRules;
  readonly projectState: ProjectState;
  readonly logger: Logger;
  /** Set in standby mode: every dispatch goes through the fence, nothing is done once lost. */
  readonly leader: Leadership | undefined;
  /** Applies a graph change's side effects (MajorDomo's: warnings, and cancels back here). */
  readonly applyChange: (res: ChangeResult, cid: string) => void;
  /** A result the cache answered with, applied as a chef's result would be. */
  readonly applyCached: (f: InFlight, result: BuildResult, cid: string) => Promise<void>;
  /** Runs a state change in MajorDomo's queue (a retry's timer). */
  readonly serial: (fn: () => Promise<void>) => Promise<void>;
  /** Plans again (a retry): MajorDomo's pump and status refresh. */
  readonly plan: (cid: string) => Promise<void>;
  /**
   * Kills a build's tasks still recorded unfinished, waiting at most `giveUpMs` for their ends,
   * and closes (records killed) its next attempt, which may still be queued with no record
   * (`unrun`: what is known of it); resolves with what it did (stop-attempts.ts).
   */
  readonly stopAttempts: (buildId: string, giveUpMs: number, unrun?: UnrunTask) => Promise<Stopped>;
}

/**
 * The builds in flight, and what starts and ends them: the pump (ready tasks up to the build
 * limit, answered from the result cache when it can, else requested of their chef's queue,
 * through the leader's fence when there is one), cancellation (on request, held until an input
 * changes or a rebuild is asked for; or because inputs changed) and the delayed retry of builds
 * a chef cancelled with nothing new to plan from.
 *
 * One build of a step at a time, across a chef's replicas: a step's next build is sent only once
 * its cancelled one has ended (its result came; a chef answers every request it takes up, a
 * cancelled one too), or CP_CANCEL_WAIT_MS passed, or its chef retired. A chef runs one build of
 * a step at a time itself (services/chef cancel.ts), but replicas of one chef share its queue:
 * without the wait the next build could start on one while another still killed the build
 * before it, both writing the step's outputs. When the wait ends with no end reported, the
 * cancelled build's tasks still recorded unfinished are killed first, and its task still queued
 * with no record is recorded killed so no runner runs it (stop-attempts.ts, at most another
 * CP_CANCEL_WAIT_MS): runners sharing a queue do not stop each other's older task of a step, so
 * without it the older could run on beside the newer on another runner.
 */
export class Dispatcher {
  readonly #inflight = new Map<string, InFlight>();
  /** Cancelled builds not yet ended, by task: the task's next build waits (WindingDown). */
  readonly #windingDown = new Map<string, WindingDown>();
  /** Tasks the user asked to rebuild even though nothing changed. */
  readonly #forced = new Set<string>();
  /** Steps of a group that did not succeed: each is built on its own next (solo()). */
  readonly #solo = new Set<string>();
  /** Builds a chef cancelled with nothing new to plan from wait before they are tried again. */
  readonly #backoff = new RetryBackoff();
  #stopping = false;

  constructor(private readonly p: DispatcherParts) {}

  get size(): number {
    return this.#inflight.size;
  }

  has(taskId: string): boolean {
    return this.#inflight.has(taskId);
  }

  taskIds(): string[] {
    return [...this.#inflight.keys()];
  }

  /** The build in flight a result answers, taken out of flight; undefined for one no longer wanted. */
  take(taskId: string, id: string): InFlight | undefined {
    const f = this.#inflight.get(taskId);
    if (!f || f.buildId !== id) return undefined;
    this.#forget(f);
    return f;
  }

  /** A build, all its steps (a group's), out of flight. */
  #forget(f: InFlight): void {
    for (const step of f.group ?? [f])
      if (this.#inflight.get(step.task.id) === step) this.#inflight.delete(step.task.id);
  }

  /** Builds in flight: a group counts once. */
  #buildsInFlight(): number {
    let n = 0;
    for (const f of this.#inflight.values()) if (!f.group || f.group[0] === f) n++;
    return n;
  }

  /** The step of a group that did not succeed is built on its own next time. */
  solo(taskId: string): void {
    this.#solo.add(taskId);
  }

  /** The next build of the task gets a new key: neither the dedupe nor the result cache answers it. */
  force(taskId: string): void {
    this.#forced.add(taskId);
  }

  stop(): void {
    this.#stopping = true;
    this.#backoff.stop();
    for (const w of this.#windingDown.values()) clearTimeout(w.timer);
    this.#windingDown.clear();
  }

  /**
   * A result for a build no longer in flight: true when it was the cancelled build the task's
   * next one waited for (WindingDown), which may now be sent.
   */
  ended(taskId: string, id: string): boolean {
    const w = this.#windingDown.get(taskId);
    if (w?.buildId !== id) return false;
    clearTimeout(w.timer);
    this.#unwind(w);
    return true;
  }

  /** The wait `w` is over for each of its steps. */
  #unwind(w: WindingDown): void {
    for (const step of w.steps)
      if (this.#windingDown.get(step) === w) this.#windingDown.delete(step);
  }

  /**
   * The task's next build waits for the end of `f`, cancelled now, up to CP_CANCEL_WAIT_MS; a
   * group's steps all wait for the group's end.
   */
  #windDown(f: InFlight): void {
    const { cfg } = this.p;
    const taskId = f.task.id;
    const steps = (f.group ?? [f]).map((s) => s.task.id);
    for (const step of steps) {
      const earlier = this.#windingDown.get(step);
      if (earlier) clearTimeout(earlier.timer);
    }
    const timer = setTimeout(() => {
      const w = this.#windingDown.get(taskId);
      if (w?.timer === timer) void this.#release(taskId, w, 'cancel-wait');
    }, cfg.cancelWaitMs);
    timer.unref();
    const w: WindingDown = {
      buildId: f.buildId,
      steps,
      chef: f.chef,
      unrun: this.#unrunOf(f.group?.[0] ?? f),
      timer,
    };
    for (const step of steps) this.#windingDown.set(step, w);
  }

  /**
   * What a record closing the build's task can say of it: its rule's resource and command.
   * Undefined for a goal's build: its chef's on-demand rule is not declared, so its resource is
   * not known here, and such a task is not closed (stop-attempts.ts).
   */
  #unrunOf(f: InFlight): UnrunTask | undefined {
    const target = this.#target(f.task);
    const rule = target && this.p.rules.get(target.ruleId)?.rule;
    if (!rule) return undefined;
    return {
      resource: rule.resource,
      command: rule.command,
      gpu: rule.gpu,
      step: { id: f.task.id, pass: f.task.pass, chef: f.chef },
    };
  }

  /**
   * Ends the wait of a step whose cancelled build's end no chef reported (`why`: the wait ran
   * out, or its chef retired): that build's tasks still recorded unfinished are killed first,
   * then the step's next build may go. A chef's report meanwhile ends the wait as usual.
   */
  async #release(taskId: string, w: WindingDown, why: 'cancel-wait' | 'chef-retired') {
    const { cfg, logger } = this.p;
    if (w.releasing) return;
    w.releasing = true;
    clearTimeout(w.timer);
    const { stopped, closed } = await this.p
      .stopAttempts(w.buildId, cfg.cancelWaitMs, w.unrun)
      .catch((err: Error): Stopped => {
        logger.warn(
          { taskId, buildId: w.buildId, err: err.message },
          "could not look for the cancelled build's tasks; the next build of its step goes",
        );
        return { stopped: [] };
      });
    await this.p.serial(async () => {
      if (this.#stopping || this.#windingDown.get(taskId) !== w) return;
      this.#unwind(w);
      logger.warn(
        {
          taskId,
          buildId: w.buildId,
          ...(why === 'cancel-wait' ? { waitedMs: cfg.cancelWaitMs } : { chef: w.chef }),
          stopped,
          ...(closed ? { closed } : {}),
        },
        why === 'cancel-wait'
          ? 'no chef reported the end of a cancelled build; the next build of its step goes'
          : "a cancelled build's chef retired before reporting its end; the next build of its step goes",
      );
      await this.p.plan(why);
    });
  }

  /**
   * A chef retired (silent, or its declaration deleted): nothing of it will report the end of the
   * builds it held, so their steps' next builds wait no more than their tasks' kill (another chef
   * may take them then).
   */
  chefRetired(chef: string): void {
    for (const [taskId, w] of this.#windingDown)
      if (w.chef === chef) void this.#release(taskId, w, 'chef-retired');
  }

  builds(): BuildInFlight[] {
    return [...this.#inflight.values()].map((f) => ({
      taskId: f.task.id,
      buildId: f.buildId,
      chef: f.chef,
      pass: f.task.pass,
      component: f.task.component,
      cyclic: f.task.cyclic,
    }));
  }

  /**
   * Dispatches ready tasks up to the build limit. False when it planned nothing because it must
   * not (stopping, the lease lapsed or lost on the way): the caller then refreshes no statuses.
   */
  async pump(cid: string): Promise<boolean> {
    const { cfg, dm, leader, projectState } = this.p;
    if (this.#stopping) return false;
    // A leader whose lease lapsed plans nothing (the server's fence refuses what would slip by).
    if (leader && !(await leader.lease.ensure())) return false;
    for (;;) {
      const free = cfg.parallelBuilds - this.#buildsInFlight();
      if (free <= 0) return false;
      // An inactive project records what changed but dispatches nothing until re-activated.
      // ready() counts what runs against its limit itself: given `free`, it gave nothing until
      // fewer than half the limit were in flight (status-pages.test: 4 builds, one done, the
      // fourth never sent while 3 ran).
      // A task whose cancelled build has not ended yet waits (WindingDown); asked for that many
      // more, so that the ones waiting do not hide the others.
      // With groups, up to CP_GROUP_BUILDS steps a free build (the graph counts every step of
      // the groups in flight as running, this.#inflight too).
      const ready = projectState.active
        ? dm
            .ready(this.#inflight.size + free * cfg.groupMax + this.#windingDown.size)
            .filter((t) => !this.#windingDown.has(t.id))
        : [];
      const builds = this.#pack(ready, free);
      if (builds.length === 0) return true;
      for (const steps of builds) {
        if (leader && !leader.lease.held()) return false;
        const tasks = steps.map((t) => dm.started(t.id));
        const [first] = tasks;
        if (first && tasks.length === 1)
          await this.#dispatch(first, cid).catch((err) => this.#refused(first, err, cid));
        else
          await this.#dispatchGroup(tasks, cid).catch(async (err) => {
            for (const t of tasks) await this.#refused(t, err, cid);
          });
      }
    }
  }

  /**
   * The ready tasks as builds, at most `free`: each on its own, or (CP_GROUP_BUILDS) steps of one
   * rule and pass packed into groups (groupSizes). Not grouped: a step of a goal's or a cycle's,
   * of a rule with projections (its chef compares each step's last run), forced, retried after
   * its group failed (solo), or one whose result the cache may hold (answered without a build).
   */
  #pack(ready: readonly TaskInstance[], free: number): TaskInstance[][] {
    const { cfg, dm, rules } = this.p;
    const builds: TaskInstance[][] = [];
    const groupable = new Map<string, TaskInstance[]>();
    for (const t of ready) {
      const rule = cfg.groupMax > 1 ? rules.get(t.ruleId)?.rule : undefined;
      const alone =
        !rule ||
        rule.projections.length > 0 ||
        t.cyclic ||
        this.#forced.has(t.id) ||
        this.#solo.has(t.id) ||
        (dm.trace(t.id) !== undefined && this.#cacheHit(t) !== undefined);
      if (!alone) {
        const key = `${t.ruleId}\u0000${t.pass}`;
        const list = groupable.get(key);
        if (list) list.push(t);
        else groupable.set(key, [t]);
      } else if (builds.length < free) {
        this.#solo.delete(t.id);
        builds.push([t]);
      }
    }
    for (const steps of groupable.values()) {
      // In task id order: the same ready steps make the same groups, whichever order the graph
      // gives them in (a standby's, a restored one's), so a request sent again after a restart or
      // a takeover is the same build, and its chef joins the task under way.
      steps.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
      let at = 0;
      for (const size of groupSizes(steps.length, cfg.groupMax, cfg.groupSpread)) {
        if (builds.length >= free) return builds;
        builds.push(steps.slice(at, at + size));
        at += size;
      }
    }
    return builds;
  }

  /** The cached result a build of `task` would be answered with now, if any. */
  #cacheHit(task: TaskInstance): BuildResult | undefined {
    const cached = this.p.results.get(buildId(task.ruleId, task.id, this.#inputsOf(task)));
    return cached?.status === 'succeeded' && this.#outputsMatch(cached) ? cached : undefined;
  }

  async #dispatch(task: TaskInstance, cid: string): Promise<void> {
    const { artefacts, dm, leader, logger, rules } = this.p;
    const owned = this.#target(task);
    if (!owned) {
      // Rules and graph change together, so this should not happen; if it does, the task must
      // not stay "running" for ever: it fails, naming the rule.
      const reason = `no chef serves rule ${task.ruleId}; see \`cpctrl status\` for the chefs`;
      logger.error({ taskId: task.id, rule: task.ruleId, cid }, reason);
      this.p.applyChange(dm.failed(task.id, reason, task.run), cid);
      for (const out of task.outputs)
        await artefacts.update(out, { status: 'failed', error: reason, producer: task.id }, cid);
      return;
    }
    const inputs = this.#inputsOf(task);
    const forced = this.#forced.delete(task.id);
    const id = buildId(task.ruleId, task.id, inputs, forced ? randomUUID() : '');
    const f: InFlight = { buildId: id, task, chef: owned.chef, cid, inputs };
    this.#inflight.set(task.id, f);

    // Asked only for a task built before (its trace): a build of a task never built, or whose run
    // was forgotten, is sent to the chef, which answers a recorded result itself when the outputs
    // on disk are still its (build.ts). In memory (recent-results.ts): no round trip before the
    // request.
    const cached = forced || !dm.trace(task.id) ? undefined : this.p.results.get(id);
    if (cached?.status === 'succeeded' && this.#outputsMatch(cached)) {
      logger.info({ taskId: task.id, buildId: id, cid }, 'result cache hit: nothing to run');
      this.#inflight.delete(task.id);
      await this.p.applyCached(f, cached, cid);
      return;
    }
    // Recorded while the request goes out (awaited with it, below): the request does not wait a
    // round trip for a status; a MajorDomo that dies in between re-plans from its records either way.
    const queued = Promise.all(
      task.outputs.map((out) =>
        artefacts.update(out, { status: 'queued', producer: task.id }, cid),
      ),
    );
    const locations: Record<string, string> = {};
    for (const path of task.inputs) {
      const pod = artefacts.get(path)?.pods[0];
      if (pod) locations[path] = pod;
    }
    // A projected input whose projection the graph did not know (a source edited outside): the
    // chef, which has the file, compares what the rule reads with the last run's.
    const last = rules.get(task.ruleId)?.rule.projections.length ? dm.trace(task.id) : undefined;
    const request = {
      buildId: id,
      taskId: task.id,
      ruleId: owned.ruleId,
      chef: owned.chef,
      stem: owned.stem,
      inputs,
      outputs: [...task.outputs],
      pass: task.pass,
      locations,
      ...(last ? { lastRun: { inputs: last.inputs, outputs: last.outputs } } : {}),
      ...(leader ? { leader: { id: leader.lease.id, epoch: leader.lease.epoch } } : {}),
      // Heard from the builds bucket's stream (result-records.ts): no build.result message.
      resultFromRecord: true as const,
    };
    await this.#send(request, [f], queued, cid);
    // Per task, so debug: at info it was a log line per compile through pino to stdout (pnpm bench
    // cbuild); the request itself is on the chef's stream, and cpctrl and the page show builds.
    logger.debug(
      { taskId: task.id, buildId: id, chef: owned.chef, pass: task.pass, cid },
      'build requested',
    );
  }

  /**
   * Requests one build of several ready steps of one rule (#pack): the first step's request,
   * with every step's inputs and the others listed (BuildRequested.group). Its id is derived
   * from the steps' own build ids, so the same steps with the same inputs are the same group.
   */
  async #dispatchGroup(tasks: readonly TaskInstance[], cid: string): Promise<void> {
    const { artefacts, leader, logger } = this.p;
    const first = tasks[0];
    if (!first) return;
    const owned = this.#target(first);
    // #pack groups steps of declared rules only; should one have gone meanwhile, each step fails
    // on its own, naming it.
    if (!owned) {
      for (const t of tasks) await this.#dispatch(t, cid);
      return;
    }
    const own = tasks.map((task) => ({ task, inputs: this.#inputsOf(task) }));
    const ids = own.map(({ task, inputs }) => buildId(task.ruleId, task.id, inputs));
    const id = groupBuildId(ids);
    const group: InFlight[] = [];
    for (const [i, { task, inputs }] of own.entries()) {
      const ownBuildId = ids[i];
      const f: InFlight = { buildId: id, task, chef: owned.chef, cid, inputs, group, ownBuildId };
      group.push(f);
      this.#inflight.set(task.id, f);
    }
    const inputs: Record<string, string> = {};
    const locations: Record<string, string> = {};
    for (const f of group)
      for (const [path, hash] of Object.entries(f.inputs)) {
        inputs[path] = hash;
        const pod = artefacts.get(path)?.pods[0];
        if (pod) locations[path] = pod;
      }
    const queued = Promise.all(
      tasks.flatMap((task) =>
        task.outputs.map((out) =>
          artefacts.update(out, { status: 'queued', producer: task.id }, cid),
        ),
      ),
    );
    const request = {
      buildId: id,
      taskId: first.id,
      ruleId: owned.ruleId,
      chef: owned.chef,
      stem: owned.stem,
      inputs,
      outputs: [...first.outputs],
      pass: first.pass,
      locations,
      ...(leader ? { leader: { id: leader.lease.id, epoch: leader.lease.epoch } } : {}),
      resultFromRecord: true as const,
      group: tasks.slice(1).map((t) => ({ taskId: t.id, stem: t.stem, outputs: [...t.outputs] })),
    };
    await this.#send(request, group, queued, cid);
    logger.debug(
      { taskId: request.taskId, buildId: id, chef: owned.chef, steps: tasks.length, cid },
      'group build requested',
    );
  }

  /**
   * Sends a build request to its chef's queue, with its outputs' `queued` records (written while
   * it goes out); `steps`' `sent` is its sequence in the builds stream (a cancel names it).
   */
  async #send(
    request: BuildRequested,
    steps: readonly InFlight[],
    queued: Promise<unknown>,
    cid: string,
  ): Promise<void> {
    const { artefacts, bus, cfg, leader } = this.p;
    const subject = subjects.buildRequest(cfg.project, request.chef);
    // A message id of this send's own: it dedups the publish's retries (a timed-out publish that
    // was stored), nothing else. A build sent before (ahead of a restart, or before a failure or
    // cancellation this MajorDomo no longer remembers) must go again, for no result of it may
    // ever come; the runner's task id (derived from the build id) still keeps it from running
    // twice, and its chef answers it from the build's record while the outputs are that build's.
    // The id was `<chef>.<build id>`, which JetStream took as a duplicate of that earlier
    // request, and the request went again under a fresh one: a publish and its ack for nothing
    // a build asked again (pnpm bench cbuild's warm clean build: 24 of 202).
    const msgId = `${request.chef}.${request.buildId}.${randomUUID()}`;
    const send = leader
      ? () => leader.fence.publish(subject, bus.encode('build.requested', request, cid), msgId)
      : () => bus.publish('build.requested', subject, request, { msgId, cid });
    // The outputs' queued records are announced before the request leaves (same connection,
    // so in this order), as when every change was its own message.
    artefacts.announceNow();
    const sending = Promise.all([queued, send()]).then(([, ack]) => ack);
    const sent = sending.then(
      (a) => a.seq,
      () => undefined,
    );
    for (const f of steps) f.sent = sent;
    await sending;
  }

  /** A request that cannot be sent fails its task, naming why, and the pump goes on. */
  async #refused(task: TaskInstance, err: unknown, cid: string): Promise<void> {
    const { artefacts, dm, logger } = this.p;
    if (err instanceof NotLeaderError) {
      // Refused by the server's fence: a newer leader has it; this one steps down (main.ts).
      this.#inflight.delete(task.id);
      logger.warn({ taskId: task.id, cid, err: err.message }, 'build request fenced off');
      return;
    }
    const reason = dispatchRefusal(err);
    if (!reason) throw err;
    this.#inflight.delete(task.id);
    logger.error({ taskId: task.id, rule: task.ruleId, cid }, reason);
    this.p.applyChange(dm.failed(task.id, reason, task.run), cid);
    for (const out of task.outputs)
      await artefacts
        .update(out, { status: 'failed', error: reason, producer: task.id }, cid)
        .catch((e: Error) =>
          logger.warn({ path: out.slice(0, 200), err: e.message }, 'not recorded'),
        );
  }

  /** The chef, rule and stem a task's build request names: a declared rule, or a goal's. */
  #target(task: TaskInstance): { chef: string; ruleId: string; stem: string } | undefined {
    const owned = this.p.rules.get(task.ruleId);
    if (owned) return { chef: owned.chef, ruleId: task.ruleId, stem: task.stem };
    const goal = this.p.goals.get(task.ruleId);
    if (goal?.rule) return { chef: goal.chef, ruleId: goal.rule, stem: goal.stem };
    return undefined;
  }

  /** A recorded result is reusable when the artefacts still have the hashes it produced. */
  #outputsMatch(result: BuildResult): boolean {
    // An output with no record, or no hash, was removed (or never stored): the result names
    // bytes nobody has, and the chef builds it again (pnpm bench cbuild's warm clean build).
    return Object.entries(result.outputs).every(
      ([path, out]) => this.p.artefacts.get(path)?.sha256 === out.sha256,
    );
  }

  /** The input hashes a build of `task` is asked with now: the records', else the graph's. */
  #inputsOf(task: TaskInstance): Record<string, string> {
    const inputs: Record<string, string> = {};
    for (const [path, hash] of Object.entries(task.inputHashes))
      inputs[path] = this.p.artefacts.get(path)?.sha256 ?? hash;
    return inputs;
  }

  /** Builds whose inputs changed under them (the graph's cancels): the chefs kill their tasks. */
  inputsChanged(taskIds: readonly string[], cid: string): void {
    const { logger } = this.p;
    const changed = new Set(taskIds);
    for (const taskId of taskIds) {
      const f = this.#inflight.get(taskId);
      if (!f) continue;
      this.#forget(f);
      logger.info({ taskId, buildId: f.buildId, cid }, 'cancelling a build whose inputs changed');
      void this.#cancel(f, 'inputs changed', cid).catch((err) =>
        logger.warn({ err, taskId }, 'could not publish build.cancel'),
      );
      // The group's other steps go back to be planned (the graph took back only this one's run).
      for (const other of f.group ?? [])
        if (!changed.has(other.task.id))
          this.p.applyChange(this.p.dm.cancelled(other.task.id, other.task.run), cid);
    }
  }

  /**
   * Tells the chefs to stop a build, naming the request it cancels (once it is sent): a chef that
   * has not pulled it yet answers it cancelled when it does, instead of running it.
   */
  async #cancel(f: InFlight, reason: string, cid: string): Promise<void> {
    const { bus, cfg } = this.p;
    this.#windDown(f);
    const upTo = await f.sent;
    await bus.publish(
      'build.cancel',
      subjects.buildCancel(cfg.project),
      { buildId: f.buildId, reason, ...(upTo !== undefined ? { upTo } : {}) },
      { cid },
    );
  }

  /**
   * Cancels a build in flight on a user's request: the chef kills its task, and the task is held
   * (recorded `cancelled`, not sent again) until an input changes or a rebuild is asked for. The
   * hold is in the outputs' records, keyed by the inputs, so a restart or a takeover keeps it.
   */
  async cancelByRequest(taskId: string, cid: string): Promise<boolean> {
    const { artefacts, dm, logger } = this.p;
    const f = this.#inflight.get(taskId);
    if (!f) return false;
    this.#forget(f);
    this.p.applyChange(dm.cancelledByRequest(taskId, f.task.run), cid);
    // A group's other steps were not asked to stop: they go back to be planned.
    for (const other of f.group ?? [])
      if (other !== f) this.p.applyChange(dm.cancelled(other.task.id, other.task.run), cid);
    await this.#cancel(f, 'cancelled by request', cid);
    const held = holdKey(f.task, f.inputs);
    for (const out of f.task.outputs)
      await artefacts.update(
        out,
        { status: 'cancelled', error: 'build cancelled by request', producer: taskId, held },
        cid,
      );
    logger.info({ taskId, buildId: f.buildId, cid }, 'build cancelled by request; held');
    return true;
  }

  /**
   * After a restore: tasks whose outputs are recorded cancelled on request are held again, while
   * their inputs are those the cancelled build was asked with (an edit applied to the graph
   * before the outputs' records were rewritten, at a kill -9, releases it).
   */
  restoreHolds(): void {
    const keys = new Map<string, string>();
    for (const rec of this.p.artefacts.withStatus('cancelled'))
      if (rec.held && rec.producer) keys.set(rec.producer, rec.held);
    if (keys.size === 0) return;
    const res = this.p.dm.restoreHolds(
      keys.keys(),
      (task) => keys.get(task.id) === holdKey(task, this.#inputsOf(task)),
    );
    this.p.applyChange(res, 'restart');
  }

  /** Schedules the retry of a build its chef cancelled; returns what its artefacts say about it. */
  holdCancelled(task: TaskInstance): string {
    const { dm, logger } = this.p;
    const taskId = task.id;
    const ms = this.#backoff.schedule(taskId, () => {
      void this.p.serial(async () => {
        // Only if still held: an input change since re-planned it already.
        const held = task.outputs.some(
          (o) => dm.producerOf(o) === taskId && dm.artefactState(o) === 'failed',
        );
        if (this.#stopping || this.#inflight.has(taskId)) return;
        // Re-planned (or gone) since: its delays start again from the first.
        if (!held) return this.#backoff.reset(taskId);
        this.p.applyChange(dm.forget(taskId), 'retry');
        await this.p.plan('retry');
      });
    });
    logger.warn({ taskId, retryInMs: ms }, 'build cancelled by its chef; retried after a delay');
    return `retried in ${Math.round(ms / 1000)} s, or at once when an input changes`;
  }

  /** A build of the task succeeded: its retry delays start again from the first. */
  succeeded(taskId: string): void {
    this.#backoff.reset(taskId);
  }
}

/** What a hold on request is keyed by: the build's key without a forced build's nonce. */
function holdKey(task: TaskInstance, inputs: Readonly<Record<string, string>>): string {
  return buildId(task.ruleId, task.id, inputs);
}
