// The error base alone: the whole protocol entry brings zod, which a depgraph process need not
// load (~40 ms at start).
import { CpError } from '@computepods/protocol/errors';

/** A rule declaration cannot be used: bad id, bad pattern, or a placeholder the inputs never bind. */
export class RuleInvalidError extends CpError {
  constructor(
    readonly ruleId: string,
    reason: string,
  ) {
    super(
      'DEPGRAPH_RULE_INVALID',
      `rule ${JSON.stringify(ruleId)} is invalid: ${reason}; fix the chef's rule declaration`,
    );
  }
}

/** A path is not a normalised project-relative path (leading "/", "..", empty segment). */
export class InvalidPathError extends CpError {
  constructor(
    readonly path: string,
    reason: string,
  ) {
    super('DEPGRAPH_INVALID_PATH', `invalid artefact path ${JSON.stringify(path)}: ${reason}`);
  }
}

/**
 * A persisted graph state cannot be read: truncated, corrupt, or not a state at all. `field`
 * names the part that is wrong. Nothing was loaded; not retryable (the same bytes fail again).
 */
export class StateCorruptError extends CpError {
  constructor(
    readonly field: string,
    reason: string,
  ) {
    super(
      'DEPGRAPH_STATE_CORRUPT',
      `depgraph state is unreadable at ${field}: ${reason}; restore it from elsewhere or rebuild the project`,
    );
  }
}

/** A hash given for an artefact is empty or not a string. */
export class InvalidHashError extends CpError {
  constructor(readonly path: string) {
    super(
      'DEPGRAPH_INVALID_HASH',
      `invalid hash for ${JSON.stringify(path)}: pass a non-empty string (sha256 hex)`,
    );
  }
}

/** An ignore pattern given to cutoffDigest is not a valid regular expression. */
export class InvalidIgnorePatternError extends CpError {
  constructor(
    readonly pattern: string,
    options?: ErrorOptions,
  ) {
    super(
      'DEPGRAPH_INVALID_IGNORE_PATTERN',
      `ignore pattern ${JSON.stringify(pattern)} is not a valid regular expression`,
      options,
    );
  }
}

/** No task instance has this id (its rule was retired, or an input is missing). */
export class UnknownTaskError extends CpError {
  constructor(readonly taskId: string) {
    super(
      'DEPGRAPH_UNKNOWN_TASK',
      `no task ${JSON.stringify(taskId)}: call ready() again and start only what it returns`,
    );
  }
}

/** started() was called for a task that ready() would not return now. */
export class TaskNotReadyError extends CpError {
  constructor(
    readonly taskId: string,
    reason: string,
  ) {
    // Retryable: the graph moves on; a later ready() may return the task.
    super(
      'DEPGRAPH_TASK_NOT_READY',
      `task ${JSON.stringify(taskId)} is not ready (${reason}): start only what ready() returns`,
      { retryable: true },
    );
  }
}
