import type { Logger } from '@computepods/bus';
import { compileRule, type DependencyManager, type RuleSpec } from '@computepods/depgraph';
import { checkName, RulesDeclared } from '@computepods/protocol';

/**
 * What of a chef's declaration MajorDomo plans with, as JSON: the chef and its rules. The rest
 * changes no plan, and no other state of MajorDomo's: `srv` (the chef process's $SRV identity,
 * new at each start of it and different in each replica; liveness.ts and chef-replicas.ts read
 * it from their own watches), `pod` and `types` (read nowhere in MajorDomo). A graph snapshot is
 * keyed on it (restore-state.ts), and a declaration put again with only those changed (a chef
 * restarted, a replica's heartbeat) is not applied again (majordomo.ts #applyRules).
 */
export function planText(decl: { readonly chef: unknown; readonly rules: unknown }): string {
  return JSON.stringify({ chef: decl.chef, rules: decl.rules });
}

/** A declaration but its rules (the bulk): what validDeclarations still parses. */
export const DeclarationBesidesRules = RulesDeclared.omit({ rules: true });

/**
 * What MajorDomo applies of one record of the rules bucket: undefined to skip the record, else
 * the declaration (undefined: the chef is gone) keeping only rules the graph can plan. One bad
 * record must never take MajorDomo down: a key that is not a chef name (`a.b` made a subject
 * throw in the liveness check, killing MajorDomo) or that another chef's declaration sits under
 * is skipped; a rule the graph refuses (a placeholder the first input does not bind, which made
 * every restart abort) is left out. Each says so in a log line naming the chef and the reason.
 * A rule `compiled` vouches for (the restored graph holds it: compiledAlready) is not compiled
 * again: at 100k artefacts the 1,204 rules' 36k patterns took 40-90 ms of a restart's CPU.
 */
export function usableDeclaration<D extends Pick<RulesDeclared, 'chef' | 'rules'>>(
  key: string,
  decl: D | undefined,
  logger: Logger,
  compiled?: (rule: D['rules'][number]) => boolean,
): { decl: D | undefined } | undefined {
  try {
    checkName('chef name', key);
  } catch (err) {
    logger.warn({ key, reason: (err as Error).message }, 'rules record skipped: not a chef name');
    return undefined;
  }
  if (!decl) return { decl };
  if (decl.chef !== key) {
    logger.warn(
      { key, chef: decl.chef },
      `rules record skipped: key ${key} holds chef ${decl.chef}'s declaration`,
    );
    return undefined;
  }
  const rules = decl.rules.filter((rule) => {
    if (compiled?.(rule)) return true;
    try {
      compileRule({
        id: rule.id,
        inputs: rule.inputs,
        optionalInputs: rule.optionalInputs,
        outputs: rule.outputs,
      });
      return true;
    } catch (err) {
      logger.error(
        { chef: key, rule: rule.id, code: (err as { code?: string }).code },
        `rule skipped: ${(err as Error).message}`,
      );
      return false;
    }
  });
  return { decl: rules.length === decl.rules.length ? decl : { ...decl, rules } };
}

/**
 * Whether `dm`'s graph holds a rule of this id compiled from the same inputs, optional inputs and
 * outputs: then usableDeclaration's compile of them would pass (compileRule checked all that and
 * more), and need not run. Any difference, and it runs.
 */
export function compiledAlready(
  dm: DependencyManager,
  rule: Pick<RuleSpec, 'id' | 'inputs' | 'optionalInputs' | 'outputs'>,
): boolean {
  const spec = dm.ruleSpec(rule.id);
  return (
    spec !== undefined &&
    sameList(spec.inputs, rule.inputs) &&
    sameList(spec.optionalInputs ?? [], rule.optionalInputs ?? []) &&
    sameList(spec.outputs, rule.outputs)
  );
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
