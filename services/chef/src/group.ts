import { type BuildRequested, type Rule, TaskSubmitted } from '@computepods/protocol';
import { fillCommand } from './command.js';
import { BuildRefusedError } from './errors.js';
import {
  type BuildPaths,
  checkRequest,
  extraInputs,
  listed,
  missingInputs,
  refuseUnsafeInputs,
  type StepPaths,
  stepPaths,
} from './rule-paths.js';

/**
 * A request builds one step, or several of one rule at once (BuildRequested.group: MajorDomo
 * packs many small ready steps, a C project's compiles, into one request and one task, as the
 * messages per build cost more than the compiles). Each step is checked against the chef's own
 * rule as a lone request is, its command filled as a lone one's, and its discovered
 * dependencies found from its own outputs (discover.ts, discoverSteps).
 */

/** One step a build runs: MajorDomo's task id, its stem and its paths from the chef's rule. */
export interface Step {
  readonly taskId: string;
  readonly stem: string;
  readonly paths: StepPaths;
}

/** A checked request: what its task touches (every step's paths), and each step's own. */
export interface CheckedSteps {
  readonly paths: BuildPaths;
  /** The request's own step first, then its group's, in the request's order. */
  readonly steps: readonly Step[];
}

/** The task ids of a request's steps: its own, then its group's (InFlightBuilds.begin). */
export function stepIds(req: BuildRequested): string[] {
  return [req.taskId, ...(req.group ?? []).map((s) => s.taskId)];
}

/**
 * The request's paths, recomputed from the chef's own rule for each of its steps (checkRequest
 * for a lone step). A group is refused (BuildRefusedError naming `group` and the step) when its
 * rule projects inputs or it comes with `lastRun` (such a rule's steps are not grouped: each
 * may be kept without a run), when two steps share a task id or an output, when one step reads
 * what another writes (a group's steps run in one task, none waiting for another's result), when a
 * step's outputs are not its rule's or its required inputs have no hash, or when an input is
 * neither a step's rule input nor a dependency the rule may have discovered (extraInputs).
 */
export function checkSteps(rule: Rule, req: BuildRequested): CheckedSteps {
  if (req.group === undefined) {
    const paths = checkRequest(rule, req);
    return { paths, steps: [{ taskId: req.taskId, stem: req.stem, paths }] };
  }
  if (rule.projections.length > 0)
    throw refusal(req.taskId, 0, `rule ${rule.id} projects inputs; its steps are not grouped`);
  if (req.lastRun)
    throw refusal(req.taskId, 0, 'lastRun is never sent with a group: each step has its own');
  const asked = [{ taskId: req.taskId, stem: req.stem, outputs: req.outputs }, ...req.group];
  const steps: Step[] = [];
  for (const [i, s] of asked.entries()) {
    if (steps.some((t) => t.taskId === s.taskId))
      throw refusal(s.taskId, i, 'another step has the same task id');
    const paths = inStep(s.taskId, i, () => stepPaths(rule, s.stem, s.outputs, req.inputs));
    const missing = missingInputs(paths, req.inputs);
    if (missing.length)
      throw refusal(s.taskId, i, `inputs has no hash for its required inputs ${listed(missing)}`);
    steps.push({ taskId: s.taskId, stem: s.stem, paths });
  }
  const writers = writersOf(steps);
  refuseReadsOfOthers(steps, writers);
  const { discovered, refused } = extraInputs(
    rule,
    steps.map((s) => s.paths),
    req.inputs,
  );
  const [bad] = refused;
  if (bad !== undefined) {
    const writer = writers.get(bad);
    const why =
      writer !== undefined
        ? `step ${writer} writes ${JSON.stringify(bad)}`
        : `rule ${rule.id} discovers no dependencies`;
    throw refusal(
      req.taskId,
      0,
      `inputs ${listed(refused)} are no step's rule inputs, nor dependencies a run may have discovered: ${why}`,
    );
  }
  refuseUnsafeInputs(rule, discovered);
  return { paths: joined(steps, discovered), steps };
}

/**
 * The step that writes each output and auxiliary of the group: path → its task id. Refuses two
 * steps writing one output, or one's auxiliary being another's output (one would overwrite the
 * other's result); steps may share an auxiliary (a log each rewrites in its turn).
 */
function writersOf(steps: readonly Step[]): Map<string, string> {
  const writers = new Map<string, string>();
  for (const [i, s] of steps.entries())
    for (const out of s.paths.outputs) {
      const other = writers.get(out);
      if (other !== undefined)
        throw refusal(s.taskId, i, `its output ${JSON.stringify(out)} is step ${other}'s too`);
      writers.set(out, s.taskId);
    }
  const outputs = new Map(writers);
  for (const [i, s] of steps.entries())
    for (const aux of s.paths.auxiliaries) {
      const owner = outputs.get(aux);
      if (owner !== undefined && owner !== s.taskId)
        throw refusal(
          s.taskId,
          i,
          `its auxiliary ${JSON.stringify(aux)} is step ${owner}'s output`,
        );
      if (!writers.has(aux)) writers.set(aux, s.taskId);
    }
  return writers;
}

/**
 * Refuses a step whose rule inputs another step writes: the group's one task runs its steps in
 * turn, and that input would be checked against its hash before the other step rewrote it.
 * A step's own output among its inputs (an .aux) is rewritten by design, as for a lone step.
 */
function refuseReadsOfOthers(steps: readonly Step[], writers: ReadonlyMap<string, string>): void {
  for (const [i, s] of steps.entries())
    for (const p of [...s.paths.required, ...s.paths.optional]) {
      const writer = writers.get(p);
      if (writer !== undefined && writer !== s.taskId)
        throw refusal(s.taskId, i, `its input ${JSON.stringify(p)} is written by step ${writer}`);
    }
}

/** The group's paths: each list the union of its steps' in step order, then the discovered. */
function joined(steps: readonly Step[], discovered: readonly string[]): BuildPaths {
  const union = (pick: (p: StepPaths) => readonly string[]) => [
    ...new Set(steps.flatMap((s) => pick(s.paths))),
  ];
  const args = union((p) => p.args);
  return {
    required: union((p) => p.required),
    optional: union((p) => p.optional),
    outputs: union((p) => p.outputs),
    auxiliaries: union((p) => p.auxiliaries),
    args,
    discovered,
    // Disjoint: a discovered input is no step's rule input (extraInputs).
    inputs: [...args, ...discovered],
  };
}

/** Where a step is in the request: its own fields, or `group[n]`. */
function field(i: number): string {
  return i === 0 ? 'the request’s own' : `group[${i - 1}]`;
}

function refusal(taskId: string, i: number, why: string): BuildRefusedError {
  return new BuildRefusedError(
    'CP_CHEF_REQUEST_MISMATCH',
    `group: step ${JSON.stringify(taskId.slice(0, 300))} (${field(i)}): ${why}. A group is built only when each of its steps would be: nothing was run or written`,
  );
}

/** Runs a check of one step, its refusal naming the step (its code kept). */
function inStep<T>(taskId: string, i: number, check: () => T): T {
  try {
    return check();
  } catch (err) {
    if (!(err instanceof BuildRefusedError)) throw err;
    throw new BuildRefusedError(
      err.code,
      `group: step ${JSON.stringify(taskId.slice(0, 300))} (${field(i)}): ${err.message}`,
      { cause: err },
    );
  }
}

/** A task's command at most (TaskSubmitted.command). */
const MAX_COMMAND = TaskSubmitted.shape.command.maxLength ?? 100_000;

/**
 * The task's command: each step's command filled as a lone step's (fillCommand), run one after
 * another, the group failing at the first step that fails. Each runs in a subshell, so that no
 * `cd` or variable of one reaches the next, on lines of its own, so that a command ending in a
 * `# comment` cannot swallow the closing parenthesis. A lone step's command is just its own.
 */
export function stepsCommand(template: string, steps: readonly Step[]): string {
  const commands = steps.map((s) =>
    fillCommand(template, { stem: s.stem, inputs: s.paths.args, outputs: s.paths.outputs }),
  );
  const [only] = commands;
  if (commands.length === 1 && only !== undefined) return only;
  const command = commands.map((c) => `(\n${c}\n)`).join(' && ');
  if (command.length > MAX_COMMAND)
    throw new BuildRefusedError(
      'CP_CHEF_REQUEST_MISMATCH',
      `group: the ${steps.length} steps' commands joined are ${command.length} characters, more than a task's ${MAX_COMMAND}; MajorDomo sends fewer steps in a group. Nothing was run`,
    );
  return command;
}
