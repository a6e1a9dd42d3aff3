import { mkdirSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Bus, Logger, TypedKv } from '@computepods/bus';
import { hashFile } from '@computepods/fswatch';
import {
  type BuildRequested,
  BuildResult,
  type Rule,
  subjects,
  type TaskRecord,
  TERMINAL_STATES,
} from '@computepods/protocol';
import { fillCommand } from './command.js';
import { compilePatterns, cutoffDigest } from './digest.js';

export interface ChefContext {
  readonly bus: Bus;
  readonly project: string;
  readonly chef: string;
  readonly pod: string;
  readonly workspace: string;
  readonly rules: ReadonlyMap<string, Rule>;
  readonly tasks: TypedKv<typeof TaskRecord>;
  readonly results: TypedKv<typeof BuildResult>;
}

type Result = BuildResult;

/**
 * Turns one build request into one runner task and reports the outcome. Idempotent: a
 * redelivered request whose result is already recorded is answered from the record, and the
 * task id is derived from the build id, so the runner never runs it twice.
 */
export async function handleBuild(
  ctx: ChefContext,
  req: BuildRequested,
  cid: string,
  logger: Logger,
): Promise<void> {
  const started = Date.now();
  const known = (await ctx.results.get(req.buildId))?.value;
  if (known && (await outputsIntact(ctx.workspace, known))) {
    logger.info(
      { buildId: req.buildId },
      'build already done and its outputs are intact; re-sending its result',
    );
    await publishResult(ctx, known, cid);
    return;
  }
  const rule = ctx.rules.get(req.ruleId);
  const base = { buildId: req.buildId, taskId: req.taskId, chef: ctx.chef, pod: ctx.pod };
  if (!rule) {
    await finish(ctx, cid, {
      ...base,
      status: 'failed',
      durationMs: 0,
      error: `chef ${ctx.chef} has no rule ${req.ruleId}`,
    });
    return;
  }

  // The inputs must still be the bytes MajorDomo planned with; otherwise the result would be
  // recorded against the wrong hashes. A newer change is on its way to MajorDomo, which re-plans.
  for (const [path, want] of Object.entries(req.inputs)) {
    const have = await hashFile(join(ctx.workspace, path)).catch(() => undefined);
    if (have !== want) {
      await finish(ctx, cid, {
        ...base,
        status: 'cancelled',
        durationMs: Date.now() - started,
        error: `input ${path} is ${have ? `now ${have.slice(0, 12)}` : 'missing'}, the request was for ${want.slice(0, 12)}; MajorDomo re-plans`,
      });
      return;
    }
  }

  const inputs = rule.inputs.map((p) => p.replaceAll('{stem}', req.stem));
  for (const out of req.outputs) mkdirSync(dirname(join(ctx.workspace, out)), { recursive: true });
  const taskId = `b-${req.buildId}`;
  await ctx.bus.publish(
    'task.submitted',
    subjects.tasks(ctx.project, rule.resource),
    {
      taskId,
      buildId: req.buildId,
      resource: rule.resource,
      ...(rule.profile ? { profile: rule.profile } : {}),
      command: fillCommand(rule.command, { stem: req.stem, inputs, outputs: req.outputs }),
      cwd: ctx.workspace,
    },
    { msgId: taskId, cid },
  );
  const record = await ctx.tasks.waitFor(taskId, (r) => TERMINAL_STATES.includes(r.state));
  const logPath = record.stderrPath;
  if (record.state !== 'finished') {
    await finish(ctx, cid, {
      ...base,
      status: 'failed',
      durationMs: Date.now() - started,
      error: `task ${taskId} ${record.state}: ${record.reason ?? 'no reason given'}`,
      ...(logPath ? { logPath } : {}),
    });
    return;
  }

  const patterns = compilePatterns(rule.cutoffIgnore, rule.id);
  const outputs: Result['outputs'] = {};
  const cutoff: Result['cutoff'] = {};
  for (const out of req.outputs) {
    const full = join(ctx.workspace, out);
    const h = await digestFile(full).catch(() => undefined);
    if (!h) {
      await finish(ctx, cid, {
        ...base,
        status: 'failed',
        durationMs: Date.now() - started,
        error: `rule ${rule.id} declares output ${out} but the command did not write it`,
        ...(logPath ? { logPath } : {}),
      });
      return;
    }
    outputs[out] = { sha256: h.sha256, size: h.size };
    cutoff[out] = patterns.length ? await cutoffDigest(full, patterns) : h.sha256;
  }
  await finish(ctx, cid, {
    ...base,
    status: 'succeeded',
    outputs,
    cutoff,
    discovered: [],
    durationMs: Date.now() - started,
    ...(logPath ? { logPath } : {}),
  });
}

async function finish(
  ctx: ChefContext,
  cid: string,
  result: Omit<Result, 'outputs' | 'cutoff' | 'discovered'> & Partial<Result>,
): Promise<void> {
  const full = BuildResult.parse(result);
  // Recorded first: the result cache (a constructive trace) that answers a repeated request.
  // Only successes: a failure may be transient, a cancellation is about other bytes.
  if (full.status === 'succeeded') await ctx.results.put(full.buildId, full);
  await publishResult(ctx, full, cid);
}

async function publishResult(ctx: ChefContext, result: Result, cid: string): Promise<void> {
  await ctx.bus.publish('build.result', subjects.buildResult(ctx.project), result, {
    msgId: `result-${result.buildId}`,
    cid,
  });
}

/** True when every output of a recorded result is still on disk with the recorded hash. */
export async function outputsIntact(workspace: string, result: Result): Promise<boolean> {
  if (result.status !== 'succeeded') return false;
  for (const [path, rec] of Object.entries(result.outputs)) {
    const h = await hashFile(join(workspace, path)).catch(() => undefined);
    if (h !== rec.sha256) return false;
  }
  return true;
}

async function digestFile(path: string): Promise<{ sha256: string; size: number }> {
  const [sha256, st] = await Promise.all([hashFile(path), stat(path)]);
  return { sha256, size: st.size };
}
