import { extOf } from './path.js';

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
  /** Undefined for a literal pattern (no placeholders). */
  readonly regex: RegExp | undefined;
  /** Literal text around each placeholder occurrence: parts.length = slots.length + 1. */
  readonly parts: readonly string[];
  readonly slots: readonly string[];
  /** Index key: extension of the literal tail, or undefined when a match can have any extension. */
  readonly ext: string | undefined;
}

const PLACEHOLDER = /\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

export function compilePattern(source: string): Pattern {
  // Most patterns of explicit rules (an archive's 32 objects) are literal: skip the regex.
  if (!source.includes('{')) {
    return { source, names: [], regex: undefined, parts: [source], slots: [], ext: extOf(source) };
  }
  const names: string[] = [];
  const parts: string[] = [];
  const slots: string[] = [];
  let regex = '^';
  let last = 0;
  for (const m of source.matchAll(PLACEHOLDER)) {
    const name = m[1]!;
    regex += escapeRegex(source.slice(last, m.index));
    parts.push(source.slice(last, m.index));
    slots.push(name);
    if (names.includes(name)) regex += `\\${names.indexOf(name) + 1}`;
    else {
      names.push(name);
      regex += name === 'stem' ? '(.+)' : '([^/]+)';
    }
    last = m.index + m[0].length;
  }
  const tail = source.slice(last);
  parts.push(tail);
  regex += `${escapeRegex(tail)}$`;
  if (names.length === 0)
    return { source, names, regex: undefined, parts, slots, ext: extOf(source) };
  // The extension is known when the last segment's tail is literal up to its last ".": with a
  // "/" in the tail the whole last segment is literal; without, a "." must be in the tail.
  const ext = tail.includes('/') || tail.includes('.') ? extOf(tail) : undefined;
  return { source, names, regex: new RegExp(regex), parts, slots, ext };
}

/** Bindings when `path` matches, else undefined. */
export function matchPattern(pattern: Pattern, path: string): Record<string, string> | undefined {
  if (!pattern.regex) return path === pattern.source ? {} : undefined;
  const m = pattern.regex.exec(path);
  if (!m) return undefined;
  const bindings: Record<string, string> = {};
  for (let i = 0; i < pattern.names.length; i++) bindings[pattern.names[i]!] = m[i + 1]!;
  return bindings;
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

function escapeRegex(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}
