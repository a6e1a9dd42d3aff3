import { InvalidConfigError, MAX_STEM, type Rule } from '@computepods/protocol';
import { hasControlChars } from './control-chars.js';
import { BuildRefusedError } from './errors.js';
import { patternOf } from './patterns.js';

/** The placeholders of a rule, in the order depgraph names them: the first input's. */
export function placeholderNames(rule: Rule): readonly string[] {
  const [first] = rule.inputs;
  // A parsed Rule has an input (the schema says min 1): this guards a Rule built by hand.
  if (first === undefined)
    throw new InvalidConfigError(`rule ${rule.id}`, ['inputs: a rule needs at least one input']);
  return patternOf(first).names;
}

/**
 * The placeholder values of a build from its stem as MajorDomo sends it (depgraph's stemKey):
 * '' for a rule without placeholders, the stem itself for rules using only {stem}, otherwise
 * `name=value,name=value` in the first input's order. Every value is checked: a forged stem
 * (`/home/alice/thesis`, `../x`, a newline) is refused before any path is made from it.
 */
export function stemBindings(rule: Rule, stem: string): Record<string, string> {
  const refuse = (why: string): never => {
    throw new BuildRefusedError(
      'CP_CHEF_UNSAFE_STEM',
      `rule ${rule.id}: stem ${JSON.stringify(stem.slice(0, 200))} refused: ${why}; MajorDomo only sends stems it matched on workspace paths, so this request is forged or corrupt and nothing was run`,
    );
  };
  if (stem.length > MAX_STEM) refuse(`longer than ${MAX_STEM} characters`);
  if (hasControlChars(stem)) refuse('it holds control characters');
  const names = placeholderNames(rule);
  if (names.length === 0) {
    if (stem !== '') refuse('the rule has no placeholders, so its stem is empty');
    return {};
  }
  const bindings =
    names.length === 1 && names[0] === 'stem'
      ? { stem }
      : (parseKey(names, stem) ?? refuse(`expected ${names.map((n) => `${n}=…`).join(',')}`));
  for (const [name, value] of Object.entries(bindings)) {
    if (value === '') refuse(`{${name}} is empty`);
    if (value.startsWith('/')) refuse(`{${name}} is absolute`);
    if (value.includes('\\')) refuse(`{${name}} holds a backslash`);
    if (value.split('/').includes('..')) refuse(`{${name}} climbs out with ".."`);
    // depgraph binds any placeholder but {stem} within one path segment.
    if (name !== 'stem' && value.includes('/')) refuse(`{${name}} spans a "/"`);
  }
  return bindings;
}

/** `a=1,b=2` for names [a, b], split at each `,<next name>=` (a value may hold commas). */
function parseKey(names: readonly string[], key: string): Record<string, string> | undefined {
  const out: Record<string, string> = {};
  let rest = key;
  for (const [i, name] of names.entries()) {
    if (!rest.startsWith(`${name}=`)) return undefined;
    rest = rest.slice(name.length + 1);
    const next = names[i + 1];
    const end = next === undefined ? rest.length : rest.indexOf(`,${next}=`);
    if (end < 0) return undefined;
    out[name] = rest.slice(0, end);
    rest = next === undefined ? '' : rest.slice(end + 1);
  }
  return out;
}
