import ignore, { type Ignore } from 'ignore';
import type { Policy, PolicyRule } from './types.js';

/**
 * Ignored unless `useDefaultIgnores: false`: VCS and dependency trees, and the temp and
 * backup files editors write during a save, so that an atomic save reports only the real file.
 */
export const defaultIgnores: readonly string[] = Object.freeze([
  '.git/',
  'node_modules/',
  // vim: swap files, backup `file~`, and the `4913` probe it writes to test the directory.
  '*.swp',
  '*.swo',
  '*.swx',
  '*~',
  '4913',
  // emacs lock and autosave files.
  '.#*',
  '#*#',
  // JetBrains "safe write".
  '*___jb_tmp___',
  '*___jb_old___',
  // VS Code atomic save temp files.
  '*.vsctmp',
  // The TeX engines' -recorder file while they run (`pdflatex<pid>.fls`, renamed to the job's
  // `.fls` at the end): seen, hashed, announced and then deleted on every LaTeX pass otherwise.
  'pdflatex[0-9]*.fls',
  'xelatex[0-9]*.fls',
  'lualatex[0-9]*.fls',
  'latex[0-9]*.fls',
  'pdftex[0-9]*.fls',
]);

/**
 * A necessary condition for a gitignore pattern to match a file: the longest literal run of
 * the pattern occurs in the file's name (or, for a pattern with an inner slash, in its name
 * or directory: runs are split at slashes). `undefined` when no cheap condition exists
 * (escapes, a bare `*`): then every path gets the full check.
 */
interface Literal {
  text: string;
  anchored: boolean;
}

function literalOf(line: string): Literal | null | undefined {
  let p = line.trim();
  if (p === '' || p.startsWith('#')) return null;
  // Negations only re-include; if no positive pattern can match, they cannot matter.
  if (p.startsWith('!')) return null;
  if (p.includes('\\')) return undefined;
  // A pattern ending in "/" matches directories only; directories are decided separately,
  // but a file below one is still caught there, so such a pattern never matches a file itself.
  if (p.endsWith('/')) return null;
  if (p.startsWith('/')) p = p.slice(1);
  const anchored = p.includes('/');
  let best = '';
  let cur = '';
  for (let i = 0; i < p.length; i++) {
    const c = p.charAt(i);
    if (c === '*' || c === '?' || c === '[' || c === '/') {
      if (cur.length > best.length) best = cur;
      cur = '';
      if (c === '[') {
        const end = p.indexOf(']', i + 2);
        if (end < 0) return undefined;
        i = end;
      }
    } else cur += c;
  }
  if (cur.length > best.length) best = cur;
  if (best === '') return undefined;
  return { text: best, anchored };
}

interface DirInfo {
  /** Left out by the ignore patterns (itself or an ancestor). */
  ignored: boolean;
  /** Index of the first policy rule matching it or an ancestor; Infinity if none. */
  rule: number;
}

const ROOT: DirInfo = { ignored: false, rule: Number.POSITIVE_INFINITY };

/**
 * The literals of a rule set compiled to two regular expressions (one test each instead of
 * one `includes` per pattern); `always` when some pattern has no literal.
 */
interface Prefilter {
  always: boolean;
  /** Literals of slash-free patterns, tested on the file name. */
  name: RegExp | null;
  /** Literals of patterns with an inner slash, tested on the directory and the name. */
  anchored: RegExp | null;
}

const reEscape = (t: string) => t.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

function prefilterOf(lines: readonly string[]): Prefilter {
  const name: string[] = [];
  const anchored: string[] = [];
  for (const line of lines) {
    const l = literalOf(line);
    if (l === undefined) return { always: true, name: null, anchored: null };
    if (l !== null) (l.anchored ? anchored : name).push(reEscape(l.text));
  }
  const re = (xs: string[]) => (xs.length === 0 ? null : new RegExp(xs.join('|')));
  return { always: false, name: re(name), anchored: re(anchored) };
}

/** Whether some pattern could match the file `name` in `dir` (literals never contain "/"). */
function mayMatch(f: Prefilter, dir: string, name: string): boolean {
  if (f.always) return true;
  if (f.name?.test(name)) return true;
  return f.anchored !== null && (f.anchored.test(name) || f.anchored.test(dir));
}

/**
 * Decides the policy of a project-relative POSIX path. Ignore patterns come first (defaults,
 * the ignore file, extra patterns), then the policy rules in order; otherwise `artefact`.
 * Matching is case-sensitive, as git's is on Linux.
 *
 * The `ignore` package costs 5–15 µs a path, which is more than the whole stat of a file
 * in a restart scan; directories are decided once each, and a file goes through `ignore`
 * only if a literal part of some pattern occurs in its name.
 */
export class PathMatcher {
  private readonly ignored: Ignore;
  private readonly ignoredLits: Prefilter;
  private readonly rules: Array<{ ig: Ignore; policy: Policy; lits: Prefilter }>;
  private readonly dirCache = new Map<string, DirInfo>();

  constructor(opts: {
    useDefaults: boolean;
    patterns: readonly string[];
    ignoreFileText?: string;
    policies: readonly PolicyRule[];
  }) {
    const lines = [
      ...(opts.useDefaults ? defaultIgnores : []),
      ...(opts.ignoreFileText?.split(/\r?\n/) ?? []),
      ...opts.patterns,
    ];
    this.ignored = ignore({ allowRelativePaths: true, ignorecase: false }).add(lines);
    this.ignoredLits = prefilterOf(lines);
    this.rules = opts.policies.map((r) => ({
      ig: ignore({ ignorecase: false }).add(r.pattern),
      policy: r.policy,
      lits: prefilterOf([r.pattern]),
    }));
  }

  /** Policy for a file. */
  policy(rel: string): Policy {
    const slash = rel.lastIndexOf('/');
    return slash < 0
      ? this.policyIn('', rel)
      : this.policyIn(rel.slice(0, slash), rel.slice(slash + 1));
  }

  /** Policy for the file `name` in directory `dir` ('' for the root), without joining them. */
  policyIn(dir: string, name: string): Policy {
    const d = dir === '' ? ROOT : this.dirInfo(dir);
    if (d.ignored) return 'ignore';
    let rel: string | undefined;
    if (mayMatch(this.ignoredLits, dir, name)) {
      rel = dir === '' ? name : `${dir}/${name}`;
      if (this.ignored.ignores(rel)) return 'ignore';
    }
    // The first rule matching the file itself or one of its directories wins.
    for (let i = 0; i < d.rule; i++) {
      const r = this.rules[i];
      if (r === undefined) break;
      if (!mayMatch(r.lits, dir, name)) continue;
      rel ??= dir === '' ? name : `${dir}/${name}`;
      if (r.ig.ignores(rel)) return r.policy;
    }
    return this.rules[d.rule]?.policy ?? 'artefact';
  }

  /**
   * Whether every file of `dir` is certainly an artefact, judged from all its names at once
   * (`joined`, NUL-separated: no pattern literal contains a NUL, so a match lies within one
   * name). False means "look at each file", not "some file is not an artefact".
   */
  allArtefacts(dir: string, joined: string): boolean {
    const d = dir === '' ? ROOT : this.dirInfo(dir);
    if (d.ignored || d.rule !== Number.POSITIVE_INFINITY) return false;
    if (mayMatch(this.ignoredLits, dir, joined)) return false;
    for (const r of this.rules) if (mayMatch(r.lits, dir, joined)) return false;
    return true;
  }

  /** Whether a directory (and so everything under it) is left out. */
  dirIgnored(rel: string): boolean {
    const d = this.dirInfo(rel);
    return d.ignored || this.rules[d.rule]?.policy === 'ignore';
  }

  /** Cached per directory: a tree has few directories compared to files. */
  private dirInfo(rel: string): DirInfo {
    let d = this.dirCache.get(rel);
    if (d !== undefined) return d;
    const slash = rel.lastIndexOf('/');
    const parent = slash >= 0 ? this.dirInfo(rel.slice(0, slash)) : ROOT;
    if (parent.ignored || this.ignored.ignores(`${rel}/`)) d = { ignored: true, rule: parent.rule };
    else {
      let rule = parent.rule;
      const first = this.rules.slice(0, rule).findIndex((r) => r.ig.ignores(`${rel}/`));
      if (first >= 0) rule = first;
      d = { ignored: false, rule };
    }
    if (this.dirCache.size > 100_000) this.dirCache.clear();
    this.dirCache.set(rel, d);
    return d;
  }
}
