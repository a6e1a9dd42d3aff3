/** A rule declaration cannot be used: bad id, bad pattern, or a placeholder the inputs never bind. */
export class RuleInvalidError extends Error {
  readonly code = 'DEPGRAPH_RULE_INVALID';
  readonly retryable = false;
  constructor(
    readonly ruleId: string,
    reason: string,
  ) {
    super(`rule ${JSON.stringify(ruleId)} is invalid: ${reason}; fix the chef's rule declaration`);
    this.name = 'RuleInvalidError';
  }
}

/** A path is not a normalised project-relative path (leading "/", "..", empty segment). */
export class InvalidPathError extends Error {
  readonly code = 'DEPGRAPH_INVALID_PATH';
  readonly retryable = false;
  constructor(
    readonly path: string,
    reason: string,
  ) {
    super(`invalid artefact path ${JSON.stringify(path)}: ${reason}`);
    this.name = 'InvalidPathError';
  }
}

/** A hash given for an artefact is empty or not a string. */
export class InvalidHashError extends Error {
  readonly code = 'DEPGRAPH_INVALID_HASH';
  readonly retryable = false;
  constructor(readonly path: string) {
    super(`invalid hash for ${JSON.stringify(path)}: pass a non-empty string (sha256 hex)`);
    this.name = 'InvalidHashError';
  }
}

/** An ignore pattern given to cutoffDigest is not a valid regular expression. */
export class InvalidIgnorePatternError extends Error {
  readonly code = 'DEPGRAPH_INVALID_IGNORE_PATTERN';
  readonly retryable = false;
  constructor(
    readonly pattern: string,
    options?: ErrorOptions,
  ) {
    super(`ignore pattern ${JSON.stringify(pattern)} is not a valid regular expression`, options);
    this.name = 'InvalidIgnorePatternError';
  }
}

/** No task instance has this id (its rule was retired, or an input is missing). */
export class UnknownTaskError extends Error {
  readonly code = 'DEPGRAPH_UNKNOWN_TASK';
  readonly retryable = false;
  constructor(readonly taskId: string) {
    super(`no task ${JSON.stringify(taskId)}: call ready() again and start only what it returns`);
    this.name = 'UnknownTaskError';
  }
}

/** started() was called for a task that ready() would not return now. */
export class TaskNotReadyError extends Error {
  readonly code = 'DEPGRAPH_TASK_NOT_READY';
  /** The graph moves on; a later ready() may return the task. */
  readonly retryable = true;
  constructor(
    readonly taskId: string,
    reason: string,
  ) {
    super(
      `task ${JSON.stringify(taskId)} is not ready (${reason}): start only what ready() returns`,
    );
    this.name = 'TaskNotReadyError';
  }
}
