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
]);

/**
 * Decides the policy of a project-relative POSIX path. Ignore patterns come first (defaults,
 * the ignore file, extra patterns), then the policy rules in order; otherwise `artefact`.
 */
export class PathMatcher {
  private readonly ignored: Ignore;
  private readonly rules: Array<{ ig: Ignore; policy: Policy }>;
  private readonly cache = new Map<string, Policy>();

  constructor(opts: {
    useDefaults: boolean;
    patterns: readonly string[];
    ignoreFileText?: string;
    policies: readonly PolicyRule[];
  }) {
    this.ignored = ignore({ allowRelativePaths: true });
    if (opts.useDefaults) this.ignored.add([...defaultIgnores]);
    if (opts.ignoreFileText !== undefined) this.ignored.add(opts.ignoreFileText);
    this.ignored.add([...opts.patterns]);
    this.rules = opts.policies.map((r) => ({ ig: ignore().add(r.pattern), policy: r.policy }));
  }

  /** Policy for a file. */
  policy(rel: string): Policy {
    let p = this.cache.get(rel);
    if (p !== undefined) return p;
    p = this.decide(rel);
    // Bounded: a long-lived watcher over a churning tree must not grow without limit.
    if (this.cache.size > 200_000) this.cache.clear();
    this.cache.set(rel, p);
    return p;
  }

  /** Whether a directory (and so everything under it) is left out. */
  dirIgnored(rel: string): boolean {
    return this.policy(`${rel}/`) === 'ignore';
  }

  private decide(rel: string): Policy {
    if (this.ignored.ignores(rel)) return 'ignore';
    for (const r of this.rules) {
      if (r.ig.ignores(rel)) return r.policy;
    }
    return 'artefact';
  }

  /** Whether a path matches a `log` rule (directories are never logs). */
  isLog(rel: string): boolean {
    return this.policy(rel) === 'log';
  }
}
