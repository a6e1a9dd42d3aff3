import { RuleInvalidError } from './errors.js';
import { isNormalPath } from './path.js';
import { compilePattern, type Pattern } from './pattern.js';
import type { RuleSpec } from './types.js';

export interface CompiledRule {
  readonly id: string;
  readonly spec: RuleSpec;
  /** At least one: the first names the task instances. */
  readonly required: readonly [Pattern, ...Pattern[]];
  readonly optional: readonly Pattern[];
  readonly outputs: readonly Pattern[];
  /** Projected inputs: the pattern (a required or optional input) and its projection key. */
  readonly projections: readonly { readonly pattern: Pattern; readonly key: string }[];
  /** Placeholders, as bound by the first required input. */
  readonly names: readonly string[];
  /** Equal fingerprints: same rule, so task traces stay valid when a chef re-declares it. */
  readonly fingerprint: string;
}

const RULE_ID = /^[A-Za-z0-9_-]{1,100}$/;

export function compileRule(spec: RuleSpec): CompiledRule {
  const id = spec.id;
  if (typeof id !== 'string' || !RULE_ID.test(id)) {
    throw new RuleInvalidError(String(id), 'the id must be 1-100 letters, digits, "-" or "_"');
  }
  const inputs: readonly string[] = Array.isArray(spec.inputs) ? spec.inputs : [];
  if (inputs[0] === undefined) {
    throw new RuleInvalidError(id, 'it needs at least one required input');
  }
  if (!Array.isArray(spec.outputs) || spec.outputs.length === 0) {
    throw new RuleInvalidError(id, 'it needs at least one output');
  }
  if (spec.passLimit !== undefined && !(Number.isInteger(spec.passLimit) && spec.passLimit >= 1)) {
    throw new RuleInvalidError(id, 'passLimit must be a positive integer');
  }
  const compile = (source: string) => {
    if (typeof source !== 'string' || source.length === 0) {
      throw new RuleInvalidError(id, 'a pattern is empty');
    }
    if (!isNormalPath(source)) {
      throw new RuleInvalidError(id, `pattern ${JSON.stringify(source)} is not project-relative`);
    }
    return compilePattern(source);
  };
  // Each list compiled once, with no copies of it on the way: a restart compiles every rule
  // (1,204 of them, 36,173 patterns at 100k artefacts).
  const required = inputs.map(compile) as [Pattern, ...Pattern[]];
  const optional = (spec.optionalInputs ?? []).map(compile);
  const outputs = spec.outputs.map(compile);
  const first = required[0];
  const names = first.names;
  for (const list of [required, optional, outputs]) {
    for (const p of list) {
      if (!p.placeholders) continue; // a literal binds nothing
      const unbound = p.names.find((n) => !names.includes(n));
      if (unbound !== undefined) {
        throw new RuleInvalidError(
          id,
          `placeholder {${unbound}} in ${JSON.stringify(p.source)} does not appear in the first input ${JSON.stringify(first.source)}`,
        );
      }
    }
  }
  const projections: { pattern: Pattern; key: string }[] = [];
  for (const [source, key] of Object.entries(spec.projections ?? {})) {
    const pattern =
      required[spec.inputs.indexOf(source)] ??
      optional[(spec.optionalInputs ?? []).indexOf(source)];
    if (pattern === undefined)
      throw new RuleInvalidError(
        id,
        `projection on ${JSON.stringify(source)}, which is not one of its inputs or optional inputs`,
      );
    if (typeof key !== 'string' || key.length === 0)
      throw new RuleInvalidError(id, `the projection key of ${JSON.stringify(source)} is empty`);
    projections.push({ pattern, key });
  }
  // Made when first compared: a restore compiles every rule and compares none.
  let fingerprint: string | undefined;
  return {
    id,
    spec,
    required,
    optional,
    outputs,
    projections,
    names,
    get fingerprint() {
      fingerprint ??= JSON.stringify([
        spec.inputs,
        spec.optionalInputs ?? [],
        spec.outputs,
        spec.passLimit ?? null,
        spec.meta ?? null,
        spec.projections ?? null,
      ]);
      return fingerprint;
    },
  };
}
