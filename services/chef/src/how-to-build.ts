import type { Bus } from '@computepods/bus';
import { compilePattern, fillPattern, matchPattern, stemKey } from '@computepods/depgraph';
import { CanBuildFrom, type HowToBuild, type Rule, subjects } from '@computepods/protocol';
import { placeholderNames } from './stem.js';

/**
 * The chef's side of "how to build": the first of its rules (declared or on demand) with an
 * output matching the goal and every required input in `have`; else the first rule that matches
 * at all, with `canBuild` false and `from` naming what it lacks; else `canBuild` false alone.
 */
export function canBuildFrom(
  rules: readonly Rule[],
  who: { chef: string; pod: string },
  q: HowToBuild,
): CanBuildFrom {
  const have = new Set(q.have);
  let fallback: CanBuildFrom | undefined;
  for (const rule of rules) {
    const answer = match(rule, q.goal);
    if (!answer) continue;
    const full = { ...answer, goal: q.goal, ...who };
    if (answer.from.every((p) => have.has(p))) return { ...full, canBuild: true };
    fallback ??= { ...full, canBuild: false };
  }
  return fallback ?? CanBuildFrom.parse({ goal: q.goal, ...who, canBuild: false });
}

function match(rule: Rule, goal: string) {
  const names = placeholderNames(rule);
  for (const source of rule.outputs) {
    const bindings = matchPattern(compilePattern(source), goal);
    // An output without every placeholder of the rule does not say which instance makes it.
    if (!bindings || names.some((n) => bindings[n] === undefined)) continue;
    const fill = (patterns: readonly string[]) =>
      patterns.map((p) => fillPattern(compilePattern(p), bindings));
    const outputs = fill(rule.outputs);
    return {
      rule: rule.id,
      stem: stemKey(names, bindings),
      from: fill(rule.inputs),
      optionalFrom: fill(rule.optionalInputs),
      auxiliaries: fill(rule.auxiliaries),
      outputs: [goal, ...outputs.filter((o) => o !== goal)],
    };
  }
  return undefined;
}

/**
 * Answers MajorDomo's "how to build" questions on `cp.<project>.rules.how-to-build`. Every chef
 * answers (no queue group); a question that fails validation is dead-lettered and not answered.
 */
export function answerHowToBuild(
  bus: Bus,
  rules: readonly Rule[],
  who: { chef: string; pod: string },
): () => void {
  const sub = bus.listen(subjects.howToBuild(bus.project), {
    accept: ['rules.how_to_build'],
    // Kept as a dead letter like any bad message; no answer.
    invalidMsg: 'how to build: invalid question dead-lettered',
    handler: (q, msg) => {
      try {
        const answer = canBuildFrom(rules, who, q.body);
        bus.logger.debug(
          { goal: q.body.goal, canBuild: answer.canBuild, rule: answer.rule, cid: q.cid },
          'how to build: answered',
        );
        if (msg.reply) msg.respond(bus.encode('rules.can_build_from', answer, q.cid));
      } catch (err) {
        bus.logger.warn(
          { goal: q.body.goal, err: (err as Error).message, cid: q.cid },
          'how to build: no answer',
        );
      }
    },
  });
  return () => sub.unsubscribe();
}
