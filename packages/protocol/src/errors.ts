/** A name (project, chef, resource...) cannot be used where it must go (a NATS subject token, a path). */
export class InvalidNameError extends Error {
  readonly code = 'CP_INVALID_NAME';
  readonly retryable = false;
  constructor(
    readonly field: string,
    readonly value: string,
    rule: string,
  ) {
    super(`invalid ${field} ${JSON.stringify(value)}: ${rule}`);
    this.name = 'InvalidNameError';
  }
}

/** A project-relative path escapes the project or is not relative. */
export class UnsafePathError extends Error {
  readonly code = 'CP_UNSAFE_PATH';
  readonly retryable = false;
  constructor(
    readonly path: string,
    reason: string,
  ) {
    super(`unsafe path ${JSON.stringify(path)}: ${reason}`);
    this.name = 'UnsafePathError';
  }
}
