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

/**
 * A key (a path, a task id) would make a KV key or subject longer than NATS allows: the server
 * would drop the connection that sent it, so it is refused here.
 */
export class KeyTooLongError extends Error {
  readonly code = 'CP_KEY_TOO_LONG';
  readonly retryable = false;
  constructor(key: string, max: number) {
    super(
      `key ${JSON.stringify(key.slice(0, 80))}… is too long for a KV key (over ${max} characters once encoded); use a shorter path or name`,
    );
    this.name = 'KeyTooLongError';
  }
}
