import { extOf } from './path.js';
import { matchSlots } from './pattern-match.js';

/**
 * A path pattern with `{name}` placeholders. Anchored at both ends. `{stem}` binds one or more
 * characters and may span "/" (make's `%`): `{stem}.tex` binds `paper/main` for
 * `paper/main.tex`, and `src/{stem}.txt` matches `src/a.txt` and `src/x/a.txt` but never
 * `lib/src/a.txt`. Any other `{name}` binds within one path segment (no "/"). A placeholder
 * used twice must bind the same text both times.
 */
export interface Pattern {
  readonly source: string;
  /** Distinct placeholder names in order of first appearance. */
  readonly names: readonly string[];
  /** False for a literal pattern (no placeholders): it matches its source only. */
  readonly placeholders: boolean;
  /** Literal text around each placeholder occurrence: parts.length = slots.length + 1. */
  readonly parts: readonly string[];
  readonly slots: readonly string[];
  /** Index key: extension of the literal tail, or undefined when a match can have any extension. */
  readonly ext: string | undefined;
}

const PLACEHOLDER = /\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

export function compilePattern(source: string): Pattern {
  // Most patterns of explicit rules (an archive's 32 objects) are literal: nothing to match.
  if (!source.includes('{')) {
    return {
      source,
      names: [],
      placeholders: false,
      parts: [source],
      slots: [],
      ext: extOf(source),
    };
  }
  const names: string[] = [];
  const parts: string[] = [];
  const slots: string[] = [];
  let last = 0;
  for (const m of source.matchAll(PLACEHOLDER)) {
    const name = m[1]!;
    parts.push(source.slice(last, m.index));
    slots.push(name);
    if (!names.includes(name)) names.push(name);
    last = m.index + m[0].length;
  }
  const tail = source.slice(last);
  parts.push(tail);
  if (names.length === 0)
    return { source, names, placeholders: false, parts, slots, ext: extOf(source) };
  // The extension is known when the last segment's tail is literal up to its last ".": with a
  // "/" in the tail the whole last segment is literal; without, a "." must be in the tail.
  const ext = tail.includes('/') || tail.includes('.') ? extOf(tail) : undefined;
  return { source, names, placeholders: true, parts, slots, ext };
}

/** Bindings when `path` matches, else undefined. */
export function matchPattern(pattern: Pattern, path: string): Record<string, string> | undefined {
  if (!pattern.placeholders) return path === pattern.source ? {} : undefined;
  // Not a regex: adjacent placeholders made one backtrack for tens of seconds (pattern-match.ts).
  return matchSlots(pattern, path);
}

/** The path a pattern names under `bindings` (every placeholder must be bound). */
export function fillPattern(pattern: Pattern, bindings: Readonly<Record<string, string>>): string {
  const { parts, slots } = pattern;
  let out = parts[0]!;
  for (let i = 0; i < slots.length; i++) out += bindings[slots[i]!]! + parts[i + 1]!;
  return out;
}

/** Readable, unique part of a task id: the stem alone, or `name=value` pairs. */
export function stemKey(names: readonly string[], bindings: Readonly<Record<string, string>>) {
  if (names.length === 0) return '';
  if (names.length === 1 && names[0] === 'stem') return bindings.stem!;
  return names.map((n) => `${n}=${bindings[n]}`).join(',');
}
