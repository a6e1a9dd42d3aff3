import { createHash } from 'node:crypto';
import { MessageInvalidError, type TypedKv } from '@computepods/bus';
import type { RuleSpec } from '@computepods/depgraph';
import type { CanBuildFrom } from '@computepods/protocol';

/**
 * A goal built by a chef's on-demand rule becomes one concrete rule in the graph: the answer's
 * paths, no placeholders, an id unique to the goal. Its build requests name the chef's own rule
 * and stem, so the chef runs it like any other.
 */
export function goalRuleId(answer: CanBuildFrom): string {
  const h = createHash('sha256').update(answer.goal).digest('hex').slice(0, 12);
  return `${(answer.rule ?? 'goal').slice(0, 80)}--${h}`;
}

/**
 * The concrete rule; throws MessageInvalidError naming the field when the answer cannot be one
 * (a path with braces, no rule, no inputs, the goal not first in outputs).
 */
export function goalSpec(answer: CanBuildFrom): RuleSpec {
  const refuse = (path: string, message: string) =>
    new MessageInvalidError('unplannable answer', [{ path, message }]);
  for (const field of ['from', 'optionalFrom', 'outputs'] as const) {
    const i = answer[field].findIndex((p) => p.includes('{') || p.includes('}'));
    if (i >= 0)
      throw refuse(`${field}.${i}`, `path ${JSON.stringify(answer[field][i])} has braces`);
  }
  const needs = 'an answer that can build needs a rule, inputs, and the goal first in outputs';
  if (!answer.rule) throw refuse('rule', needs);
  if (answer.from.length === 0) throw refuse('from', needs);
  if (answer.outputs[0] !== answer.goal) throw refuse('outputs.0', needs);
  return {
    id: goalRuleId(answer),
    inputs: answer.from,
    optionalInputs: answer.optionalFrom,
    outputs: answer.outputs,
    meta: { chef: answer.chef, rule: answer.rule, stem: answer.stem },
  };
}

/** Goals built by on-demand rules, by concrete rule id; kept in KV (key: the goal) for restarts. */
export class GoalRules {
  readonly #byId = new Map<string, CanBuildFrom>();

  constructor(readonly kv: TypedKv<typeof CanBuildFrom>) {}

  async load(): Promise<CanBuildFrom[]> {
    return [...(await this.kv.entries()).values()].map((e) => e.value);
  }

  get(ruleId: string): CanBuildFrom | undefined {
    return this.#byId.get(ruleId);
  }

  ofChef(chef: string): CanBuildFrom[] {
    return [...this.#byId.values()].filter((a) => a.chef === chef);
  }

  /** Remembers the answer (not yet stored: see store). */
  add(answer: CanBuildFrom): void {
    this.#byId.set(goalRuleId(answer), answer);
  }

  async store(answer: CanBuildFrom): Promise<void> {
    await this.kv.put(answer.goal, answer);
  }

  async remove(answer: CanBuildFrom): Promise<void> {
    this.#byId.delete(goalRuleId(answer));
    await this.kv.delete(answer.goal).catch(() => undefined);
  }
}
