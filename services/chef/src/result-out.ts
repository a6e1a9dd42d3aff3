import { issuesOf, MessageInvalidError, type TypedKv } from '@computepods/bus';
import { BuildResult } from '@computepods/protocol';
import { z } from 'zod';

/** A result checkResult has validated: stored as it is (see ResultOut). */
const Checked = z.custom<BuildResult>();

/** The builds bucket written with no validation of its own: checkResult validated the value. */
export type ResultOut = TypedKv<typeof Checked>;

/** A TypedKv of `results`' bucket that writes what it is given (checkResult checked it). */
export function resultOut(results: TypedKv<typeof BuildResult>): ResultOut {
  return results.withSchema(Checked);
}

/**
 * The result validated (and its defaults filled) once, for both its KV write and its message:
 * the put and the publish each parsed it, a BuildResult with every output's hashes, and zod was
 * the chef's biggest CPU after its messages (pnpm bench cbuild, issue #15).
 */
export function checkResult(result: z.input<typeof BuildResult>): BuildResult {
  const parsed = BuildResult.safeParse(result);
  if (!parsed.success)
    throw new MessageInvalidError(
      'refusing to send an invalid build.result',
      issuesOf(parsed.error, ['body']),
    );
  return parsed.data;
}
