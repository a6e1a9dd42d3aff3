import { CpError, firstIssue } from '@computepods/protocol';
import type { z } from 'zod';

/** The codes of this package's refusals. */
export type ProjectErrorCode =
  | 'CP_CONFLICT'
  | 'CP_EXISTS'
  | 'CP_IN_USE'
  | 'CP_INVALID'
  | 'CP_LAST_ADMIN'
  | 'CP_NO_REGISTRY'
  | 'CP_NOT_FOUND'
  | 'CP_PROFILE_RESOURCE';

/**
 * Every refusal of this package: a stable `code` for scripts (cpctrl prints it with -o json),
 * the `field` at fault when there is one, and a message that says what to do next.
 */
export class ProjectError extends CpError<ProjectErrorCode> {
  constructor(
    code: ProjectErrorCode,
    message: string,
    readonly field?: string,
  ) {
    super(code, message);
  }
}

export const notFound = (what: string, id: string, list: string) =>
  new ProjectError('CP_NOT_FOUND', `no ${what} ${id}; \`${list}\` lists them`);

/** Parses an operation's input; the error names the first wrong field and its rule. */
export function parseInput<S extends z.ZodType>(
  schema: S,
  input: unknown,
  what: string,
): z.infer<S> {
  const r = schema.safeParse(input);
  if (r.success) return r.data;
  const issue = firstIssue(r.error);
  const field = issue?.path || undefined;
  throw new ProjectError(
    'CP_INVALID',
    `invalid ${what}: ${field ? `${field}: ` : ''}${issue?.message ?? 'invalid'}; fix it and run the command again`,
    field,
  );
}
