import type { BuildRequested, Rule } from '@computepods/protocol';

const PLACEHOLDER = /\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

/**
 * The placeholder values of a task from its stem as MajorDomo sends it: the stem itself for rules
 * using only {stem}, otherwise depgraph's `name=value,name=value` key.
 */
export function bindingsOf(rule: Rule, stem: string): Record<string, string> {
  const names = new Set<string>();
  for (const p of [...rule.inputs, ...rule.optionalInputs, ...rule.outputs])
    for (const m of p.matchAll(PLACEHOLDER)) names.add(m[1]!);
  if (names.size === 0 || (names.size === 1 && names.has('stem'))) return { stem };
  const out: Record<string, string> = {};
  for (const pair of stem.split(',')) {
    const eq = pair.indexOf('=');
    if (eq > 0) out[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return out;
}

export function fillPattern(pattern: string, bindings: Readonly<Record<string, string>>): string {
  return pattern.replace(PLACEHOLDER, (whole, name: string) => bindings[name] ?? whole);
}

/**
 * What the command's {in} names: the required inputs, then the optional ones that exist (the
 * request lists exactly the inputs that exist). Discovered dependencies (headers, \input files)
 * are not arguments of the command, so they are left out.
 */
export function declaredInputs(rule: Rule, req: BuildRequested): { args: string[]; all: string[] } {
  const b = bindingsOf(rule, req.stem);
  const required = rule.inputs.map((p) => fillPattern(p, b));
  const optional = rule.optionalInputs.map((p) => fillPattern(p, b));
  return {
    args: [...required, ...optional.filter((p) => p in req.inputs)],
    all: [...required, ...optional],
  };
}
