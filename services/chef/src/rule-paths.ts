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

/** What a checked request may touch: the rule's paths plus the discovered dependencies it lists. */
export interface BuildPaths extends RulePaths {
  /** The command's {in}: required inputs, then the optional ones the request lists (they exist). */
  readonly args: readonly string[];
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
function list(paths: readonly string[]): string {
  const shown = paths.slice(0, SHOWN).map((p) => JSON.stringify(p.slice(0, 300)));
  return `[${shown.join(', ')}${paths.length > SHOWN ? `, … ${paths.length - SHOWN} more` : ''}]`;
}

/**
 * The paths of a build, recomputed from the chef's own rule and the request's stem; the
 * request's inputs and outputs must agree with them or the request is refused. A chef derives a
 * build's paths from its rule, never from the request: a forged `outputs: ["src/main.c"]`
 * would otherwise overwrite a source. Inputs beyond the rule's are discovered dependencies,
 * accepted only for rules that discover some, and never an output or auxiliary of the build.
 */
export function checkRequest(rule: Rule, req: BuildRequested): BuildPaths {
  const paths = rulePaths(rule, req.stem);
  const mismatch = (field: string, extra: readonly string[], missing: readonly string[]) => {
    const parts = [
      extra.length ? `not the rule's ${list(extra)}` : '',
      missing.length ? `missing ${list(missing)}` : '',
    ].filter(Boolean);
    return new BuildRefusedError(
      'CP_CHEF_REQUEST_MISMATCH',
      `rule ${rule.id}: the request's ${field} differ from what the rule gives for stem ${JSON.stringify(req.stem.slice(0, 200))}: ${parts.join('; ')}. A chef builds only the paths its own rule names: nothing was run or written`,
    );
  };

  const wantOut = new Set(paths.outputs);
  const gotOut = new Set(req.outputs);
  const extraOut = [...gotOut].filter((p) => !wantOut.has(p));
  const missingOut = [...wantOut].filter((p) => !gotOut.has(p));
  if (extraOut.length || missingOut.length) throw mismatch('outputs', extraOut, missingOut);

  const got = Object.keys(req.inputs);
  const declared = new Set([...paths.required, ...paths.optional]);
  const missingIn = paths.required.filter((p) => !(p in req.inputs));
  const products = new Set([...paths.outputs, ...paths.auxiliaries]);
  const discovered = got.filter((p) => !declared.has(p));
  // A discovered dependency is read by the build, never written by it; a rule that discovers
  // nothing has none.
  const badExtra =
    rule.discover === 'none' ? discovered : discovered.filter((p) => products.has(p));
  if (missingIn.length || badExtra.length) throw mismatch('inputs', badExtra, missingIn);
  const unsafe = discovered.find(hasControlChars);
  if (unsafe !== undefined)
    throw new BuildRefusedError(
      'CP_CHEF_UNSAFE_PATH',
      `rule ${rule.id}: input ${JSON.stringify(unsafe.slice(0, 300))} refused: it holds control characters; nothing was run`,
    );

  const args = [...paths.required, ...paths.optional.filter((p) => p in req.inputs)];
  return { ...paths, args, discovered, inputs: [...args, ...discovered] };
}
