import { GraphInvariantError } from './checked.js';
import { extOf } from './path.js';
import { matchSlots, type Slot, type Slots } from './pattern-match.js';

/**
 * A path pattern with `{name}` placeholders. Anchored at both ends. `{stem}` binds one or more
 * characters and may span "/" (make's `%`): `{stem}.tex` binds `paper/main` for
 * `paper/main.tex`, and `src/{stem}.txt` matches `src/a.txt` and `src/x/a.txt` but never
 * `lib/src/a.txt`. Any other `{name}` binds within one path segment (no "/"). A placeholder
 * used twice must bind the same text both times.
 */
export interface Pattern extends Slots {
  readonly source: string;
  /** Distinct placeholder names in order of first appearance. */
  readonly names: readonly string[];
  /** False for a literal pattern (no placeholders): it matches its source only. */
  readonly placeholders: boolean;
  /** Index key: extension of the literal tail, or undefined when a match can have any extension. */
  readonly ext: string | undefined;
}

/** The names and slots of every literal pattern: a rule may list hundreds of literal inputs. */
const NONE: readonly never[] = Object.freeze([]);

const PLACEHOLDER = /\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

/**
 * A pattern without placeholders: its source is its one field, the rest its class's (the same
 * for every literal). Most patterns of explicit rules are literal (an archive's 32 objects): at
 * 100k artefacts 36,160 of the 36,173 patterns of 1,204 rules, each an object of seven fields
 * and a string of its extension (~3.5 MiB) that a restart compiled, kept and the young
 * generation copied, though nothing reads a literal's extension (the indexes take only
 * patterns with placeholders; a literal is found by its source).
 */
class LiteralPattern implements Pattern {
  constructor(readonly source: string) {}
  get names(): readonly string[] {
    return NONE;
  }
  get placeholders(): boolean {
    return false;
  }
  get head(): string {
    return this.source;
  }
  get slots(): readonly Slot[] {
    return NONE;
  }
  get repeated(): boolean {
    return false;
  }
  get ext(): string {
    return extOf(this.source);
  }
}

export function compilePattern(source: string): Pattern {
  // Most patterns of explicit rules are literal: nothing to match.
  if (!source.includes('{')) return new LiteralPattern(source);
  const names: string[] = [];
  const found: Array<{ name: string; start: number; end: number }> = [];
  for (const m of source.matchAll(PLACEHOLDER)) {
    const [text, name] = m;
    if (name === undefined) continue;
    found.push({ name, start: m.index, end: m.index + text.length });
    if (!names.includes(name)) names.push(name);
  }
  const head = source.slice(0, found[0]?.start ?? source.length);
  const slots: Slot[] = found.map(({ name, end }, i) => ({
    name,
    anyChar: name === 'stem',
    after: source.slice(end, found[i + 1]?.start ?? source.length),
  }));
  const repeated = names.length !== slots.length;
  if (names.length === 0)
    return { source, names, placeholders: false, head, slots, repeated, ext: extOf(source) };
  // The extension is known when the last segment's tail is literal up to its last ".": with a
  // "/" in the tail the whole last segment is literal; without, a "." must be in the tail.
  const tail = slots.at(-1)?.after ?? head;
  const ext = tail.includes('/') || tail.includes('.') ? extOf(tail) : undefined;
  return { source, names, placeholders: true, head, slots, repeated, ext };
}

/** Bindings when `path` matches, else undefined. */
export function matchPattern(pattern: Pattern, path: string): Record<string, string> | undefined {
  if (!pattern.placeholders) return path === pattern.source ? {} : undefined;
  // Not a regex: adjacent placeholders made one backtrack for tens of seconds (pattern-match.ts).
  return matchSlots(pattern, path);
}

/** The path a pattern names under `bindings` (every placeholder must be bound). */
export function fillPattern(pattern: Pattern, bindings: Readonly<Record<string, string>>): string {
  let out = pattern.head;
  for (const { name, after } of pattern.slots) out += binding(bindings, name) + after;
  return out;
}

/** Readable, unique part of a task id: the stem alone, or `name=value` pairs. */
export function stemKey(names: readonly string[], bindings: Readonly<Record<string, string>>) {
  if (names.length === 0) return '';
  if (names.length === 1 && names[0] === 'stem') return binding(bindings, 'stem');
  return names.map((n) => `${n}=${bindings[n]}`).join(',');
}

/** A rule's first input binds every placeholder (compileRule checks), so one missing is a bug. */
function binding(bindings: Readonly<Record<string, string>>, name: string): string {
  const value = bindings[name];
  if (value === undefined) throw new GraphInvariantError('binding for placeholder', name);
  return value;
}
