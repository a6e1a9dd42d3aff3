import { setImmediate as turnEnd } from 'node:timers/promises';
import type { Bus, Logger, TypedKv } from '@computepods/bus';
import { projectionKey } from '@computepods/depgraph';
import { hashFile } from '@computepods/fswatch';
import {
  attemptTaskId,
  type BuildRequested,
  type BuildResult,
  isSupersededReason,
  type Rule,
  subjects,
  TERMINAL_STATES,
} from '@computepods/protocol';
import { lastAttempt, stopOrphanedAttempt, taskIdFor } from './attempts.js';
import type { InFlightBuilds } from './cancel.js';
import { Confinement, confineLocal } from './confine.js';
import { cutoffDigestFile } from './digest.js';
import { discoverSteps } from './discover.js';
import { BuildRefusedError } from './errors.js';
import { FS_CONCURRENCY, type InputFetcher, type InputOutcome } from './fetch-inputs.js';
import { type CheckedSteps, checkSteps, stepIds, stepsCommand } from './group.js';
import type { HashCache } from './hash-cache.js';
import { changedInputs, makeFolders, type Stamps, stampInputs } from './input-stamps.js';
import { unchangedSinceLastRun } from './last-run.js';
import { mapFew } from './map-few.js';
import { projectAll, projectFile, projectionsOf } from './projection.js';
import type { QueueWant, Route } from './queues.js';
import { checkResult, type ResultOut } from './result-out.js';
import type { TaskView } from './task-view.js';
import {
  type TaskFollower,
  TaskWaitError,
  type TaskWaitLimits,
  waitForTerminal,
} from './task-wait.js';

export interface ChefContext {
  readonly bus: Bus;
  readonly project: string;
  readonly chef: string;
  readonly pod: string;
  readonly workspace: string;
  readonly rules: ReadonlyMap<string, Rule>;
  readonly tasks: TypedKv<typeof TaskView>;
  readonly results: TypedKv<typeof BuildResult>;
  /** The same bucket, written with the result checkResult validated (result-out.ts). */
  readonly resultOut: ResultOut;
  readonly fetcher: InputFetcher;
  /** Hashes of workspace files kept with their stats (the fetcher's own). */
  readonly hashes: HashCache;
  readonly inflight: InFlightBuilds;
  /** Where a rule's task goes (the project's queues; see ProjectConfig). */
  readonly queues: { route(want: QueueWant): Route };
  /** How long a submitted task may go unrecorded, and unfinished (task-wait.ts). */
  readonly taskWait: TaskWaitLimits;
}

type Result = BuildResult;

type Base = Pick<Result, 'buildId' | 'taskId' | 'chef' | 'pod'>;

/**
 * The request a result answers: its message (the result's dedup key and cid), and whether its
 * sender hears results from the builds bucket alone (BuildRequested.resultFromRecord).
 */
interface Asked {
  readonly id: string;
  readonly cid: string;
  readonly recordOnly: boolean;
}

/**
 * Turns one build request into one runner task and reports the outcome. Idempotent: a
 * redelivered request whose result is already recorded is answered from the record, and the
 * task id is derived from the build id, so the runner never runs it twice.
 *
 * The request is checked first: its paths are recomputed from the chef's own rule and stem and
 * must agree, every path must stay inside the workspace on disk, and the project must have an
 * active queue for the rule. A refused request is answered with a failed result (and so acked):
 * nothing is fetched, written or run for it. A group request (BuildRequested.group) is one build
 * of several steps of the rule: each step checked as a lone one (group.ts), one task running
 * their commands in turn, one result saying what each step's run discovered.
 */
export async function handleBuild(
  ctx: ChefContext,
  req: BuildRequested,
  msg: { readonly id: string; readonly cid: string; readonly sequence?: number },
  logger: Logger,
): Promise<void> {
  const base: Base = { buildId: req.buildId, taskId: req.taskId, chef: ctx.chef, pod: ctx.pod };
  const asked: Asked = { id: msg.id, cid: msg.cid, recordOnly: req.resultFromRecord === true };
  const started = Date.now();
  const rule = ctx.rules.get(req.ruleId);
  if (!rule)
    return answerWithoutTask(
      ctx,
      asked,
      {
        ...base,
        status: 'failed',
        durationMs: 0,
        error: `chef ${ctx.chef} has no rule ${JSON.stringify(req.ruleId)}`,
      },
      logger,
    );
  // Cancelled before this chef pulled it (the cancel named this request or a later one).
  const cancelled =
    msg.sequence === undefined ? undefined : ctx.inflight.cancelledUpTo(req.buildId, msg.sequence);
  if (cancelled !== undefined)
    return answerWithoutTask(
      ctx,
      asked,
      {
        ...base,
        status: 'cancelled',
        durationMs: 0,
        error: `cancelled before it was taken up: ${cancelled}`,
      },
      logger,
    );
  // Held from the start: MajorDomo cancels a build whose inputs changed as soon as it hears of
  // it, often while the request is still being checked here (its records read, its paths
  // confined); a hold taken after the checks ignored that cancel, and the stale build ran beside
  // the step's next one, both writing its outputs (test/src/chef-cancel-early.test.ts).
  // A group's build holds each of its steps (one build of a step at a time, every one of them).
  const signal = ctx.inflight.begin(req.buildId, stepIds(req));
  // A build of the same step still winding down (cancelled, or superseded by this one) ends
  // first, and only then is anything read or checked: its result, if it finished before its
  // kill, answers this request when it is the same build; its outputs are written no more.
  if (ctx.inflight.hasPredecessor(signal))
    await ctx.inflight.predecessorEnded(signal).catch((err: unknown) => {
      ctx.inflight.end(req.buildId, signal);
      throw err;
    });
  // The task record is read while the request is checked (one round trip off the path); a
  // refused request leaves it unread. The first attempt's record is followed from then on: a
  // fresh build's task is that one, waited on with no second read.
  const following = ctx.tasks.follow(attemptTaskId(req.buildId, 0));
  const task = following.then(async (f) => (await f.read)?.value);
  // The build's result is read only when its first attempt has a record: a result this request
  // can use (a success to answer with, or the mark that its task was reported: taskIdFor) is of
  // a task, and a build's first attempt is recorded before any result of a task of it is stored.
  // A result with no task (a refusal, a cancel before a task, outputs kept: lastRun) is made again
  // as it was, from the same request. A fresh build, nearly every one, reads one record, not two:
  // a direct get and its answer fewer a compile (pnpm bench cbuild, issue #15). A success whose
  // task record is gone (past CP_RECORD_MAX_AGE_S, as its result nearly is) is built again.
  const recorded = task.then(async (t) =>
    t === undefined ? undefined : (await ctx.results.get(req.buildId))?.value,
  );
  recorded.catch(() => undefined);
  task.catch(() => undefined);
  try {
    // The reads leave in this turn's one socket write, at its check phase (the bus's
    // turn-batched transport): the checks below (synchronous file system calls, hashing) wait
    // for it, so that they run while the reads are on their way instead of holding them back.
    await turnEnd();
    // The paths' confinement, checked once here and kept until the task is submitted.
    const confine = new Confinement(ctx.workspace);
    let checked: Admitted;
    try {
      checked = await admit(ctx, rule, req, confine);
    } catch (err) {
      if (!(err instanceof BuildRefusedError)) throw err;
      logger.warn(
        { buildId: req.buildId, rule: rule.id, code: err.code, reason: err.message },
        'build request refused',
      );
      return answerWithoutTask(
        ctx,
        asked,
        {
          ...base,
          status: 'failed',
          durationMs: Date.now() - started,
          error: `${err.code}: ${err.message}`,
        },
        logger,
        signal,
      );
    }
    // The inputs are checked while the build's record is read (a round trip): a build answered
    // from its record ignores the checks, and nothing is downloaded for it (fetchIf). A record
    // that answers this very message answers it whatever became of its outputs and inputs since:
    // it is a redelivery (its ack was lost), and the sender heard the record when it was stored.
    // Checked again, a request whose step has built since would be refused or cancelled, and
    // that record would replace the build's success (fresh-clone CI run 126, nats-cluster).
    const answered = recorded.then(async (known) =>
      known && (known.answers === msg.id || (await outputsIntact(ctx.workspace, known)))
        ? known
        : undefined,
    );
    answered.catch(() => undefined);
    const checks = ctx.fetcher.ensureAll(
      checked.paths.inputs.map((path) => ({
        path,
        sha256: req.inputs[path] as string,
        pod: req.locations[path],
      })),
      confine,
      // A failed read throws below: nothing to fetch for.
      answered.then(
        (a) => a === undefined,
        () => false,
      ),
    );
    checks.catch(() => undefined);
    const known = await recorded;
    const done = await answered;
    if (done) {
      logger.info(
        { buildId: req.buildId },
        done.answers === msg.id
          ? 'request answered already (a redelivery); nothing to send'
          : 'build already done and its outputs are intact; re-sending its result',
      );
      await answerFromRecord(ctx, done, asked);
      return;
    }
    await build(
      ctx,
      req,
      rule,
      checked,
      base,
      signal,
      asked,
      logger,
      { known, following, task },
      confine,
      checks,
    );
  } finally {
    ctx.inflight.end(req.buildId, signal);
    following.then(
      (f) => f.stop(),
      () => undefined,
    );
  }
}

/** A request's checked paths (each step's: group.ts) and its task's queue. */
interface Admitted extends CheckedSteps {
  readonly route: Route;
}

/** The request's checked paths and its task's queue, or BuildRefusedError. */
async function admit(
  ctx: ChefContext,
  rule: Rule,
  req: BuildRequested,
  confine: Confinement,
): Promise<Admitted> {
  const { paths, steps } = checkSteps(rule, req);
  const route = ctx.queues.route(rule);
  await mapFew(
    new Set([...paths.inputs, ...paths.outputs, ...paths.auxiliaries]),
    (p) => confine.check(p),
    FS_CONCURRENCY,
  );
  return { paths, steps, route };
}

async function build(
  ctx: ChefContext,
  req: BuildRequested,
  rule: Rule,
  { paths, steps, route }: Admitted,
  base: Base,
  signal: AbortSignal,
  msg: Asked,
  logger: Logger,
  read: {
    known: Result | undefined;
    task: Promise<TaskView | undefined>;
    following: Promise<TaskFollower>;
  },
  confine: Confinement,
  /** The inputs' checks, in the order of paths.inputs (InputFetcher.ensureAll). */
  inputChecks: Promise<InputOutcome[]>,
): Promise<void> {
  const { cid } = msg;
  const started = Date.now();
  const fail = (
    status: 'failed' | 'cancelled',
    error: string,
    logPath?: string,
    inputsNow?: BuildResult['inputsNow'],
  ) =>
    finish(ctx, msg, {
      ...base,
      status,
      durationMs: Date.now() - started,
      error,
      ...(logPath ? { logPath } : {}),
      ...(inputsNow ? { inputsNow } : {}),
    });
  // Ended before a task of this request's was submitted: a task of the build a dead chef left
  // running is stopped first (stopOrphanedAttempt).
  const failUnrun = async (
    status: 'failed' | 'cancelled',
    error: string,
    inputsNow?: BuildResult['inputsNow'],
  ) => {
    await stopOrphanedAttempt(ctx, req.buildId, logger, signal, { first: await read.task });
    return fail(status, error, undefined, inputsNow);
  };
  // The inputs must be the bytes MajorDomo planned with, or the result would be recorded against
  // the wrong hashes: missing or different ones come from the pod that has them; if none has,
  // a newer change is on its way to MajorDomo, which re-plans.
  // All at once (a pod's missing files in one batch), begun while the build's record was read
  // (handleBuild); the first input in the rule's order that is wrong is the one named.
  const checks = await inputChecks;
  for (const [i, path] of paths.inputs.entries()) {
    const r = checks[i] as InputOutcome;
    if ('err' in r) return failUnrun('failed', errorText(r.err));
    if (!r.check.ok)
      return failUnrun(
        'cancelled',
        `${r.check.reason}; MajorDomo re-plans`,
        r.check.now ? { [path]: r.check.now } : undefined,
      );
  }
  if (signal.aborted) return failUnrun('cancelled', `cancelled: ${String(signal.reason)}`);

  // The task's own outputs among its inputs (an .aux) are rewritten by design: not watched.
  // Each is stamped as it was when its hash was checked (a change since shows after the run),
  // or stat'ed now when it was downloaded.
  const watched = paths.inputs.filter((p) => !paths.outputs.includes(p));
  const checkedStamps = new Map<string, string>();
  for (const [i, path] of paths.inputs.entries()) {
    const r = checks[i] as InputOutcome;
    if ('check' in r && r.check.ok && r.check.stamp) checkedStamps.set(path, r.check.stamp);
  }
  let stamps: Stamps;
  let command: string;
  try {
    command = stepsCommand(rule.command, steps);
    stamps = await stampInputs(confine, watched, checkedStamps);
    await makeFolders(confine, paths.outputs);
  } catch (err) {
    return failUnrun('failed', errorText(err));
  }
  // What the run reads of its projected inputs, at the bytes it reads (checked unchanged after):
  // recorded in its trace, so an edit outside that part does not rerun it.
  const inputProjections: Result['inputProjections'] = {};
  for (const p of rule.projections) {
    const i = rule.inputs.indexOf(p.input);
    const path = i >= 0 ? paths.required[i] : paths.optional[rule.optionalInputs.indexOf(p.input)];
    if (path === undefined || !paths.inputs.includes(path)) continue;
    const r = await projectFile(await confine.check(path), p);
    if ('sha256' in r) inputProjections[path] = { [projectionKey(p)]: r.sha256 };
    else
      logger.warn({ buildId: req.buildId, path, err: r.error }, 'no projection: whole file counts');
  }
  // MajorDomo sent the last run's trace (the rule projects an input): when nothing the rule
  // reads changed since and the outputs are as that run left them, they stand; nothing runs.
  if (
    req.lastRun &&
    (await unchangedSinceLastRun(ctx.workspace, rule, req, paths, inputProjections))
  ) {
    logger.info(
      { buildId: req.buildId, rule: rule.id },
      'nothing the rule reads changed since its last run: outputs kept, nothing run',
    );
    return reportOutputs(ctx, msg, req, rule, { paths, steps }, base, started, logger, fail, {
      logPath: undefined,
      inputProjections,
      kept: true,
      confine: new Confinement(ctx.workspace),
    });
  }
  if (signal.aborted) return failUnrun('cancelled', `cancelled: ${String(signal.reason)}`);
  // The records read at the start stand (read once the step's earlier builds had ended, so
  // no one here has run this build since).
  const first = await read.task;
  const reported = read.known !== undefined;
  const last = await lastAttempt(ctx.tasks, req.buildId, first);
  // The next attempt's record, followed since lastAttempt read it as none: stopped once unused.
  const stopNext = () => last.next?.stop();
  const taskId = await taskIdFor(ctx, req.buildId, last, signal, reported, [
    ...paths.outputs,
  ]).catch((err: unknown) => {
    stopNext();
    throw err;
  });
  if (signal.aborted) {
    stopNext();
    return failUnrun('cancelled', `cancelled: ${String(signal.reason)}`);
  }
  if (last.rec && !TERMINAL_STATES.includes(last.rec.state) && taskId === last.id)
    logger.info(
      { buildId: req.buildId, taskId, state: last.rec.state },
      "joining the build's attempt under way: its task is reported, no other runs",
    );
  // The wait starts first. The first attempt's record has been followed since the request came
  // (handleBuild), the next attempt's since lastAttempt found none: either is waited on with no
  // read again (a build asked again once its outputs changed runs attempt 1: pnpm bench
  // cbuild's warm clean build). Another's wait has its watch of the record up and its read (any
  // write before the watch) goes out with the submission, one socket write and one turn for
  // both (task-wait.ts).
  const submitFailed = new AbortController();
  const follower =
    taskId === attemptTaskId(req.buildId, 0)
      ? await read.following
      : taskId === attemptTaskId(req.buildId, last.n + 1)
        ? last.next
        : undefined;
  if (follower !== last.next) stopNext();
  const ended = waitForTerminal(
    ctx.tasks,
    taskId,
    route.queue,
    ctx.taskWait,
    submitFailed.signal,
    follower,
  );
  // Settled on every path (its end, a timeout, the submission failed, cancelled).
  ended.then(stopNext, stopNext);
  await ctx.bus
    .publish(
      'task.submitted',
      subjects.tasks(ctx.project, route.queue),
      {
        taskId,
        buildId: req.buildId,
        resource: rule.resource,
        ...(route.profile ? { profile: route.profile } : {}),
        command,
        cwd: ctx.workspace,
        gpu: rule.gpu,
        ...(rule.environment ? { environment: rule.environment } : {}),
        // A resource whose jobs do not see this workspace stages these and brings the outputs back.
        files: {
          inputs: [...paths.inputs],
          outputs: [...paths.outputs],
          auxiliaries: [...paths.auxiliaries],
        },
        step: {
          id: req.taskId,
          pass: req.pass,
          chef: ctx.chef,
          // The runner runs one task of each of a group's steps at a time, as of its first.
          ...(steps.length > 1 ? { also: steps.slice(1).map((s) => s.taskId) } : {}),
        },
      },
      { msgId: taskId, cid },
    )
    .catch((err: unknown) => {
      submitFailed.abort(err);
      throw err;
    });
  ctx.inflight.submitted(signal, taskId);
  let record: TaskView;
  try {
    record = await ended;
  } catch (err) {
    if (!(err instanceof TaskWaitError)) throw err;
    logger.warn({ buildId: req.buildId, taskId, code: err.code }, err.message);
    return fail('failed', `${err.code}: ${err.message}`);
  }
  if (record.stopping)
    logger.warn(
      { buildId: req.buildId, taskId, waitedMs: ctx.taskWait.stopMs },
      `task ${taskId} ${record.state}, and its processes may still run (recorded stopping): the build ends all the same`,
    );
  const logPath = record.stderrPath;
  if (record.state === 'killed' && signal.aborted)
    return fail('cancelled', `cancelled: ${String(signal.reason)}; task ${taskId} killed`, logPath);
  // The runner killed it for a newer task of the step (a newer build, asked of another chef or
  // of this one's restarted self): MajorDomo plans the step again.
  if (record.state === 'killed' && isSupersededReason(record.reason))
    return fail('cancelled', `task ${taskId} ${record.reason}; MajorDomo re-plans`, logPath);
  if (record.state !== 'finished')
    return fail(
      'failed',
      `task ${taskId} ${record.state}: ${record.reason ?? 'no reason given'}`,
      logPath,
    );

  // The command may have left symlinks: the paths are checked afresh from here on.
  const after = new Confinement(ctx.workspace);
  // An input edited while the task ran may have been read half old, half new: the outputs
  // cannot be recorded against the planned hashes. MajorDomo has the new hash and rebuilds.
  const moved = await changedInputs(after, ctx.hashes, req.inputs, stamps);
  if (moved)
    return fail(
      'cancelled',
      `input ${moved} changed while the task ran; MajorDomo re-plans`,
      logPath,
    );

  return reportOutputs(ctx, msg, req, rule, { paths, steps }, base, started, logger, fail, {
    logPath,
    inputProjections,
    kept: false,
    confine: after,
  });
}

/**
 * Hashes the outputs (their cutoff digests and the projections the chef's rules take of them),
 * finds the dependencies the run discovered and reports success; `kept`: nothing ran, the outputs
 * of the last run stand.
 */
async function reportOutputs(
  ctx: ChefContext,
  msg: Asked,
  req: BuildRequested,
  rule: Rule,
  { paths, steps }: CheckedSteps,
  base: Base,
  started: number,
  logger: Logger,
  fail: (status: 'failed', error: string, logPath?: string) => Promise<void>,
  {
    logPath,
    inputProjections,
    kept,
    confine,
  }: {
    logPath: string | undefined;
    inputProjections: Result['inputProjections'];
    kept: boolean;
    /** Checked after the run (or, nothing run, after the last run's check). */
    confine: Confinement;
  },
): Promise<void> {
  // The outputs hashed a few at once, and the run's dependency records read meanwhile: on the
  // path from the task's end to the result MajorDomo plans the next pass from.
  const [hashed, found] = await Promise.all([
    mapFew(
      paths.outputs,
      (out) => hashOutput(ctx, confine, rule, out, req.buildId, logger),
      FS_CONCURRENCY,
    ),
    // Each step's own (a group's task ran them all): BuildResult.steps.
    discoverSteps({ workspace: ctx.workspace, rule, confine }, steps).then(
      (list) => ({ list }),
      (err: unknown) => ({ err }),
    ),
  ]);
  const outputs: Result['outputs'] = {};
  const cutoff: Result['cutoff'] = {};
  const projections: Result['projections'] = {};
  for (const [i, out] of paths.outputs.entries()) {
    const h = hashed[i] as OutputHashes | { error: string };
    if ('error' in h) return fail('failed', h.error, logPath);
    outputs[out] = h.output;
    cutoff[out] = h.cutoff;
    if (h.projections) projections[out] = h.projections;
  }
  if ('err' in found) return fail('failed', errorText(found.err), logPath);
  const { discovered } = found.list;
  if (discovered.length) logger.debug({ buildId: req.buildId, discovered }, 'dependencies found');
  await finish(ctx, msg, {
    ...base,
    status: 'succeeded',
    outputs,
    cutoff,
    projections,
    inputProjections,
    discovered,
    ...(req.group ? { steps: found.list.steps } : {}),
    durationMs: Date.now() - started,
    ...(logPath ? { logPath } : {}),
    ...(kept ? { kept } : {}),
  });
}

interface OutputHashes {
  readonly output: Result['outputs'][string];
  readonly cutoff: string;
  readonly projections: Record<string, string> | undefined;
}

/** An output's hash, cutoff digest and the projections the chef's rules take of it, or why not. */
async function hashOutput(
  ctx: ChefContext,
  confine: Confinement,
  rule: Rule,
  out: string,
  buildId: string,
  logger: Logger,
): Promise<OutputHashes | { error: string }> {
  // The command may have left a symlink: its target is not read unless it is ours.
  const full = await confine.check(out).catch((err: Error) => err);
  if (full instanceof Error) return { error: errorText(full) };
  const h = await ctx.hashes.digest(full).catch(() => undefined);
  if (!h)
    return { error: `rule ${rule.id} declares output ${out} but the command did not write it` };
  const cutoff = rule.cutoffIgnore.length
    ? await cutoffDigestFile(full, rule.cutoffIgnore)
    : h.sha256;
  // Projections this chef's rules take of the output (bibtex's of the .aux): with them the
  // graph decides at once whether those rules must run again.
  const specs = projectionsOf(ctx.rules.values(), out);
  let projections: Record<string, string> | undefined;
  if (specs.size) {
    const { hashes, errors } = await projectAll(full, specs);
    if (Object.keys(hashes).length) projections = hashes;
    for (const err of errors)
      logger.warn({ buildId, path: out, err }, 'no projection: whole file counts');
  }
  return { output: { sha256: h.sha256, size: h.size, mtimeNs: h.mtimeNs }, cutoff, projections };
}

async function finish(
  ctx: ChefContext,
  msg: Asked,
  result: Omit<
    Result,
    'outputs' | 'cutoff' | 'discovered' | 'inputsNow' | 'projections' | 'inputProjections'
  > &
    Partial<Result>,
): Promise<void> {
  // Validated (and its defaults filled) once, for the put and the publish (an invalid result
  // throws here, neither stored nor sent). Recorded: the result cache (a constructive trace) that answers a repeated request
  // (MajorDomo and handleBuild reuse successes only: a failure may be transient, a cancellation
  // is about other bytes). Every outcome is recorded, so a new request for this build knows that
  // its task, if it finished, was reported already and is not to be reused (taskIdFor). Stored
  // before it is published: a request that comes once the result is out (the output overwritten,
  // the build asked again) must find the record. Put and published at once, a request read no
  // record yet, took the finished task as unreported, and writtenSince could not tell the new
  // bytes from the task's (an mtime is the kernel's coarse clock, a tick behind: the write came
  // within milliseconds of the task's end), so the overwritten bytes were reported as the
  // build's output (fresh-clone CI, chef-attempt-reads; with the put held 300 ms it fails 3 of
  // 3). A sender that hears results from the bucket's stream (resultFromRecord, MajorDomo) has
  // the result with the put, the record there before anyone hears of it: no message more.
  const checked = checkResult(msg.recordOnly ? { ...result, answers: msg.id } : result);
  await ctx.resultOut.put(checked.buildId, checked);
  if (!msg.recordOnly) await publishResult(ctx, checked, msg);
}

/**
 * Ends a request answered without a task (no such rule, cancelled before it was taken up,
 * refused): its outcome is recorded and sent, unless the build's record answers this very
 * message. That is a redelivery (its ack was lost) of a request already answered, whose sender
 * heard that record when it was stored; checked again against a workspace that moved on, its
 * outcome now would replace the record, a success among them (a cache entry lost). One read,
 * on these paths only (test/src/chef-repeat.test.ts).
 */
async function answerWithoutTask(
  ctx: ChefContext,
  msg: Asked,
  result: Parameters<typeof finish>[2],
  logger: Logger,
  signal?: AbortSignal,
): Promise<void> {
  const known = msg.recordOnly ? (await ctx.results.get(result.buildId))?.value : undefined;
  if (known?.answers === msg.id) return answerFromRecord(ctx, known, msg);
  await stopOrphanedAttempt(ctx, result.buildId, logger, signal);
  return finish(ctx, msg, result);
}

/**
 * Answers a request with the result its build already has (read from the bucket, decoded). A
 * sender that hears results from the bucket's stream has heard it when the record answers this
 * very message (a redelivery: this chef, or another replica, stored it and did not ack); any
 * other request gets the record written again, naming it: a new message on that stream.
 */
async function answerFromRecord(ctx: ChefContext, result: BuildResult, msg: Asked): Promise<void> {
  if (!msg.recordOnly) await publishResult(ctx, result, msg);
  else if (result.answers !== msg.id)
    await ctx.resultOut.put(result.buildId, { ...result, answers: msg.id });
}

/** Publishes a validated result: one checkResult made, or one read from the bucket (decoded). */
async function publishResult(ctx: ChefContext, result: BuildResult, msg: Asked): Promise<void> {
  // Keyed by the request message: the result of a redelivered request (this chef crashed after
  // publishing) is dropped as a duplicate, but a new request for the same build (MajorDomo
  // restarted and forgot a failure, or the inputs changed and changed back) gets its answer.
  await ctx.bus.publishValidated('build.result', subjects.buildResult(ctx.project), result, {
    msgId: `result-${result.buildId}-${msg.id}`,
    cid: msg.cid,
  });
}

/** True when every output of a recorded result is still on disk with the recorded hash. */
export async function outputsIntact(workspace: string, result: Result): Promise<boolean> {
  if (result.status !== 'succeeded') return false;
  for (const [path, rec] of Object.entries(result.outputs)) {
    const full = await confineLocal(workspace, path).catch(() => undefined);
    const h = full && (await hashFile(full).catch(() => undefined));
    if (h !== rec.sha256) return false;
  }
  return true;
}

/** A failure's text for BuildResult.error: refusals carry their stable code. */
function errorText(err: unknown): string {
  if (err instanceof BuildRefusedError) return `${err.code}: ${err.message}`;
  return (err as Error).message;
}
