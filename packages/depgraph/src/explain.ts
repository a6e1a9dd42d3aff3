import { dirtyReason } from './dirty.js';
import type { Graph } from './graph.js';
import type { Scheduler } from './scheduler.js';
import type { Task } from './task.js';
import type { ArtefactState, NonConvergence, Status, WhyStep } from './types.js';

export function status(g: Graph, s: Scheduler): Status {
  const ids = (tasks: Iterable<Task>) => [...tasks].map((t) => t.id).sort();
  const dirty = [...s.dirty];
  const reports = new Set<NonConvergence>();
  for (const t of dirty) if (t.nc) reports.add(t.nc);
  return {
    idle: s.running.size === 0 && s.dispatchable.size === 0,
    running: ids(s.running),
    dirty: ids(dirty),
    blocked: ids(dirty.filter((t) => !t.running && blockedReason(g, t) !== undefined)),
    failed: dirty
      .flatMap((t) => (t.failed === undefined ? [] : [{ task: t.id, reason: t.failed }]))
      .sort((a, b) => (a.task < b.task ? -1 : 1)),
    // A report names the component as it was when it stopped; tasks may have gone since.
    nonConvergent: [...reports].map((r) => ({
      ...r,
      tasks: r.tasks.filter((id) => g.taskById.has(id)),
    })),
  };
}

/** Why a dirty task cannot run at all (as opposed to waiting for upstream work). */
export function blockedReason(g: Graph, t: Task): string | undefined {
  if (t.failed !== undefined) return `failed: ${t.failed}`;
  if (t.held) return 'cancelled by request';
  if (t.nc) return `its cycle did not converge in ${t.nc.passes} passes`;
  const missing = t.required.find((p) => g.hash[p] === undefined);
  if (missing !== undefined) return `required input ${g.paths[missing]} is missing`;
  return undefined;
}

export function artefactState(g: Graph, s: Scheduler, path: string): ArtefactState {
  const p = g.id(path);
  if (p === undefined) return 'missing';
  const prod = g.producerOf(p);
  const exists = g.hash[p] !== undefined;
  if (prod < 0) return exists ? 'source' : 'missing';
  const t = g.task(prod);
  if (t.running) return 'building';
  if (t.failed !== undefined) return 'failed';
  if (t.held) return 'cancelled';
  if (t.nc) return 'not_converging';
  if (t.dirty || s.region.has(t.comp)) return 'dirty';
  return exists ? 'up_to_date' : 'missing';
}

const short = (h: string | undefined) => (h === undefined ? 'absent' : h.slice(0, 12));

export function why(g: Graph, s: Scheduler, path: string): WhyStep[] {
  const start = g.id(path);
  if (start === undefined) return [];
  const steps: WhyStep[] = [];
  const seen = new Set<number>();
  const explain = (p: number): void => {
    if (seen.has(p)) return;
    seen.add(p);
    const prod = g.producerOf(p);
    if (prod < 0) return;
    const t = g.task(prod);
    const here = g.path(p);
    const blocked = blockedReason(g, t);
    const reason = t.dirty ? dirtyReason(g, t) : undefined;
    if (reason?.kind === 'never') {
      steps.push({ artefact: here, because: `${t.id} has never built it` });
    } else if (reason?.kind === 'output') {
      const o = g.path(reason.path);
      steps.push({
        artefact: here,
        because: `${t.id}'s output ${o} differs from what it last built (${short(reason.was)} → ${short(g.hash[reason.path])})`,
      });
    } else if (reason?.kind === 'input') {
      const q = reason.path;
      const input = g.path(q);
      const change = `${short(reason.was)} → ${short(g.compareHash(t, q))}`;
      const inputProducer = g.producerOf(q);
      if (inputProducer >= 0 && inputProducer !== prod) explain(q);
      else if (inputProducer < 0) {
        const what =
          reason.was === undefined
            ? 'appeared'
            : g.hash[q] === undefined
              ? 'was deleted'
              : 'changed';
        steps.push({ artefact: input, because: `${what} since ${t.id} last ran (${change})` });
      }
      steps.push({ artefact: here, because: `input ${input} of ${t.id} changed (${change})` });
    } else if (s.region.has(t.comp)) {
      const pending = t.inputs.find((q) => {
        const u = g.producerOf(q);
        return u >= 0 && u !== prod && s.region.has(g.task(u).comp);
      });
      if (pending === undefined) return;
      explain(pending);
      steps.push({
        artefact: here,
        because: `${t.id} waits: its input ${g.paths[pending]} is being rebuilt and may change`,
      });
      return;
    }
    if (blocked) steps.push({ artefact: here, because: `${t.id} is blocked: ${blocked}` });
  };
  explain(start);
  return steps;
}
