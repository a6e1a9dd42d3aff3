import { fillPattern } from '@computepods/depgraph';
import { type BuildRequested, checkRelativePath, type Rule } from '@computepods/protocol';
import { hasControlChars } from './control-chars.js';
import { BuildRefusedError } from './errors.js';
import { patternOf } from './patterns.js';
import { stemBindings } from './stem.js';

/** A build's paths as the chef's own rule gives them for the stem, in the rule's order. */
export interface RulePaths {
  readonly required: readonly string[];
  readonly optional: readonly string[];
  readonly outputs: readonly string[];
  readonly auxiliaries: readonly string[];
}

/** One step's paths, as its rule gives them, and the command's {in} for it. */
export interface StepPaths extends RulePaths {
  /** The command's {in}: required inputs, then the optional ones the request lists (they exist). */
  readonly args: readonly string[];
}

/** What a checked request may touch: the rule's paths plus the discovered dependencies it lists. */
export interface BuildPaths extends StepPaths {
  /** Inputs beyond the rule's (headers, \input files found by earlier builds): read, never written. */
  readonly discovered: readonly string[];
  /** Every input to make present and watch: args, then discovered. */
  readonly inputs: readonly string[];
}

/**
 * Fills every pattern of `rule` from `stem`, checking each path: project-relative, in normal
 * form, no control characters. Throws BuildRefusedError naming the rule, field and path.
 */
export function rulePaths(rule: Rule, stem: string): RulePaths {
  const bindings = stemBindings(rule, stem);
  const fill = (field: string, patterns: readonly string[]) =>
    patterns.map((pattern, i) => {
      const path = fillPattern(patternOf(pattern), bindings);
      const refuse = (why: string): never => {
        throw new BuildRefusedError(
          'CP_CHEF_UNSAFE_PATH',
          `rule ${rule.id}: ${field}[${i}] ${JSON.stringify(path.slice(0, 300))} for stem ${JSON.stringify(stem.slice(0, 200))} refused: ${why}; nothing was run`,
        );
      };
      if (hasControlChars(path)) refuse('it holds control characters');
      let norm: string;
      try {
        norm = checkRelativePath(path);
      } catch (err) {
        return refuse((err as Error).message);
      }
      if (norm !== path) refuse(`not in normal form (${JSON.stringify(norm)})`);
      return path;
    });
  return {
    required: fill('inputs', rule.inputs),
    optional: fill('optionalInputs', rule.optionalInputs),
    outputs: fill('outputs', rule.outputs),
    auxiliaries: fill('auxiliaries', rule.auxiliaries),
  };
}

const SHOWN = 5;
/** Up to SHOWN paths, quoted, for a message. */
export function listed(paths: readonly string[]): string {
  const shown = paths.slice(0, SHOWN).map((p) => JSON.stringify(p.slice(0, 300)));
  return `[${shown.join(', ')}${paths.length > SHOWN ? `, … ${paths.length - SHOWN} more` : ''}]`;
}

function mismatch(
  rule: Rule,
  stem: string,
  field: string,
  extra: readonly string[],
  missing: readonly string[],
): BuildRefusedError {
  const parts = [
    extra.length ? `not the rule's ${listed(extra)}` : '',
    missing.length ? `missing ${listed(missing)}` : '',
  ].filter(Boolean);
  return new BuildRefusedError(
    'CP_CHEF_REQUEST_MISMATCH',
    `rule ${rule.id}: the request's ${field} differ from what the rule gives for stem ${JSON.stringify(stem.slice(0, 200))}: ${parts.join('; ')}. A chef builds only the paths its own rule names: nothing was run or written`,
  );
}

/**
 * The rule's paths for `stem`, whose outputs must be exactly the request's `outputs`: a chef
 * derives a build's paths from its rule, never from the request, or a forged
 * `outputs: ["src/main.c"]` would overwrite a source. {in} takes the optional inputs `inputs`
 * lists (they exist).
 */
export function stepPaths(
  rule: Rule,
  stem: string,
  outputs: readonly string[],
  inputs: Readonly<Record<string, string>>,
): StepPaths {
  const paths = rulePaths(rule, stem);
  const want = new Set(paths.outputs);
  const got = new Set(outputs);
  const extra = [...got].filter((p) => !want.has(p));
  const missing = [...want].filter((p) => !got.has(p));
  if (extra.length || missing.length) throw mismatch(rule, stem, 'outputs', extra, missing);
  return { ...paths, args: [...paths.required, ...paths.optional.filter((p) => p in inputs)] };
}

/** The required inputs of `paths` that `inputs` lacks. */
export function missingInputs(
  paths: RulePaths,
  inputs: Readonly<Record<string, string>>,
): string[] {
  return paths.required.filter((p) => !(p in inputs));
}

/**
 * The request's inputs beyond its steps' rule inputs, in the request's order: discovered
 * dependencies, accepted only for rules that discover some, and never an output or auxiliary of
 * a step (a discovered dependency is read by the build, never written by it). `refused`: those
 * not accepted.
 */
export function extraInputs(
  rule: Rule,
  steps: readonly RulePaths[],
  inputs: Readonly<Record<string, string>>,
): { readonly discovered: string[]; readonly refused: string[] } {
  const declared = new Set(steps.flatMap((s) => [...s.required, ...s.optional]));
  const products = new Set(steps.flatMap((s) => [...s.outputs, ...s.auxiliaries]));
  const discovered = Object.keys(inputs).filter((p) => !declared.has(p));
  const refused = rule.discover === 'none' ? discovered : discovered.filter((p) => products.has(p));
  return { discovered, refused };
}

/** Refuses a discovered input holding control characters (the rule's paths are checked filled). */
export function refuseUnsafeInputs(rule: Rule, discovered: readonly string[]): void {
  const unsafe = discovered.find(hasControlChars);
  if (unsafe !== undefined)
    throw new BuildRefusedError(
      'CP_CHEF_UNSAFE_PATH',
      `rule ${rule.id}: input ${JSON.stringify(unsafe.slice(0, 300))} refused: it holds control characters; nothing was run`,
    );
}

/**
 * The paths of a build, recomputed from the chef's own rule and the request's stem; the
 * request's inputs and outputs must agree with them or the request is refused (stepPaths,
 * missingInputs, extraInputs).
 */
export function checkRequest(rule: Rule, req: BuildRequested): BuildPaths {
  const paths = stepPaths(rule, req.stem, req.outputs, req.inputs);
  const missing = missingInputs(paths, req.inputs);
  const { discovered, refused } = extraInputs(rule, [paths], req.inputs);
  if (missing.length || refused.length) throw mismatch(rule, req.stem, 'inputs', refused, missing);
  refuseUnsafeInputs(rule, discovered);
  return { ...paths, discovered, inputs: [...paths.args, ...discovered] };
}
