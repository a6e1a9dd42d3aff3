import { z } from 'zod';
import type { Issue } from './errors.js';

/**
 * The issues an error carries, as dead letters and replies name them: `path` a dotted string.
 * A ZodError thrown inside a handler (a `Schema.parse` on the way out) carries zod's own issues,
 * whose paths are arrays: forwarded raw they made the dead letter itself invalid, and the chef
 * that tried to publish it logged "could not publish dead letter" instead.
 */
export function issuesFromError(err: unknown): Issue[] {
  if (err instanceof z.ZodError) return normaliseIssues(err.issues);
  const issues = (err as { issues?: unknown } | undefined)?.issues;
  return Array.isArray(issues) ? normaliseIssues(issues) : [];
}

/** Any issue-like list as Issues: array paths joined with ".", messages as strings. */
export function normaliseIssues(issues: readonly unknown[]): Issue[] {
  return issues.map((i) => {
    const { path, message } = (i ?? {}) as { path?: unknown; message?: unknown };
    return {
      path: Array.isArray(path) ? path.map(String).join('.') : String(path ?? ''),
      message: String(message ?? i),
    };
  });
}

/** A handler's failure that is about its input (validation): never worth a retry. */
export function isValidationError(err: unknown): boolean {
  return err instanceof z.ZodError;
}
