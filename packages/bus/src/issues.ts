import { type Issue, normaliseIssues } from '@computepods/protocol';
import { z } from 'zod';

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

// Kept where bus users import it from; written once, in protocol.
export { normaliseIssues };

/** A handler's failure that is about its input (validation): never worth a retry. */
export function isValidationError(err: unknown): boolean {
  return err instanceof z.ZodError;
}
