import type { Logger } from '@computepods/bus';
import type { Rule, RulesDeclared } from '@computepods/protocol';

/** What the registry reads of a declaration (a snapshot's planText holds no more). */
export type DeclaredRules = Pick<RulesDeclared, 'chef' | 'rules'>;

/** A rule and the chef whose it is (not its pod: a replica on another pod declares the same). */
export interface OwnedRule {
  readonly chef: string;
  readonly rule: Rule;
}

/**
 * The RulesManager's registry: which chef owns which rule. Two chefs declaring the same rule id:
 * the chef whose name sorts first wins, every time, and a warning says so.
 */
export class RuleRegistry {
  readonly #byChef = new Map<string, DeclaredRules>();
  #winners = new Map<string, OwnedRule>();

  constructor(readonly logger: Logger) {}

  /** Replaces a chef's declaration (undefined: the chef is gone). Returns the winners before and after. */
  set(
    chef: string,
    decl: DeclaredRules | undefined,
  ): { before: Map<string, OwnedRule>; after: Map<string, OwnedRule> } {
    const before = this.#winners;
    if (decl) this.#byChef.set(chef, decl);
    else this.#byChef.delete(chef);
    this.#winners = this.#compute(true);
    return { before, after: this.#winners };
  }

  #compute(warn: boolean): Map<string, OwnedRule> {
    const out = new Map<string, OwnedRule>();
    const byName = [...this.#byChef].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    for (const [chef, decl] of byName) {
      for (const rule of decl.rules) {
        const held = out.get(rule.id);
        if (held) {
          if (warn && JSON.stringify(held.rule) !== JSON.stringify(rule)) {
            this.logger.warn(
              { rule: rule.id, kept: held.chef, ignored: chef },
              `chefs ${held.chef} and ${chef} both declare rule ${rule.id}; using ${held.chef}'s (first by name)`,
            );
          }
          continue;
        }
        out.set(rule.id, { chef, rule });
      }
    }
    return out;
  }

  get(ruleId: string): OwnedRule | undefined {
    return this.#winners.get(ruleId);
  }

  all(): ReadonlyMap<string, OwnedRule> {
    return this.#winners;
  }

  chefs(): string[] {
    return [...this.#byChef.keys()].sort();
  }
}
