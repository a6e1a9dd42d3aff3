import type { z } from 'zod';

/**
 * A validation problem as every error, reply and dead letter names it: the field's dotted path
 * (`body.events.0.path`; empty for the value as a whole) and what is wrong with it.
 */
export interface Issue {
  readonly path: string;
  readonly message: string;
}

/** zod's issues as Issues, their paths under `prefix` (a body checked apart: `['body']`). */
export function issuesOf(error: z.ZodError, prefix: readonly (string | number)[] = []): Issue[] {
  return error.issues.map((i) => ({
    path: [...prefix, ...i.path].map(String).join('.'),
    message: i.message,
  }));
}

/**
 * Any issue-like list as Issues: zod's (array paths) or already dotted ones, messages as
 * strings. A ZodError's issues forwarded raw once made a dead letter itself invalid.
 */
export function normaliseIssues(issues: readonly unknown[]): Issue[] {
  return issues.map((i) => {
    const { path, message } = (i ?? {}) as { path?: unknown; message?: unknown };
    return {
      path: Array.isArray(path) ? path.map(String).join('.') : String(path ?? ''),
      message: String(message ?? i),
    };
  });
}

/** One issue as a person reads it: `field.path: message`, `(top level): message`. */
export function issueLine(issue: Issue): string {
  return `${issue.path || '(top level)'}: ${issue.message}`;
}

/** The first issue of a failed parse (the field an error names), if zod gave any. */
export function firstIssue(error: z.ZodError): Issue | undefined {
  return issuesOf(error)[0];
}
