/**
 * The one error base of ComputePods. Every failure a caller can act on is a `CpError`: a stable
 * `code` from the union below (scripts and wire answers switch on it), whether a retry can help
 * (`retryable`, read through `isRetryable`), the original `cause`, and a message that says what
 * happened and what to do next. `name` is the class's own name, set once here.
 *
 *   class WidgetGoneError extends CpError {
 *     constructor(readonly id: string) {
 *       super('CP_NOT_FOUND', `no widget ${id}; \`cpctrl widget list\` lists them`);
 *     }
 *   }
 */

/** Every code an error of this project carries. A code is a promise: never reuse or rename one. */
export const ERROR_CODES = [
  // wire and API answers (bus, majordomo, cpctrl)
  'CP_BAD_REQUEST',
  'CP_ERROR',
  'CP_FORBIDDEN',
  'CP_INTERNAL',
  'CP_UNAUTHORIZED',
  'CP_UNAVAILABLE',
  // protocol
  'CP_INVALID_CONFIG',
  'CP_INVALID_ENV',
  'CP_INVALID_NAME',
  'CP_KEY_TOO_LONG',
  'CP_UNSAFE_PATH',
  // bus
  'CP_MESSAGE_INVALID',
  'CP_NATS_AUTH',
  'CP_NATS_CREDS',
  'CP_NATS_UNAVAILABLE',
  'CP_PROVISIONING_MISSING',
  'CP_STORAGE_QUOTA',
  // auth, projects
  'CP_ACCOUNT_PUSH',
  'CP_AUTH_STORE',
  'CP_CONFLICT',
  'CP_EXISTS',
  'CP_IN_USE',
  'CP_INVALID',
  'CP_LAST_ADMIN',
  'CP_NO_REGISTRY',
  'CP_NOT_FOUND',
  'CP_PROFILE_RESOURCE',
  // executors
  'CP_BATCHING',
  'CP_ILLEGAL_TRANSITION',
  'CP_RECORD_FAILED',
  'CP_RESOURCE_COMMAND',
  'CP_TASK_ENVIRONMENT',
  'CP_TASK_FILE',
  'CP_TASK_NOT_FOUND',
  'CP_UNSAFE_VALUE',
  // fswatch
  'CP_FSWATCH_CLOSED',
  'CP_FSWATCH_CONFIG',
  'CP_FSWATCH_HASH',
  'CP_FSWATCH_ROOT',
  'CP_FSWATCH_STAMP_FILE',
  'CP_FSWATCH_WATCH_LIMIT',
  'CP_FSWATCH_WORKER',
  // logstream
  'CP_LOG_UNCONFIRMED',
  // inotify2nats
  'CP_INOTIFY_SETTINGS',
  'CP_POD_SYNC_FAILED',
  'CP_POD_UNREACHABLE',
  'CP_UNSAFE_SYNC_PATH',
  // depgraph
  'DEPGRAPH_INVALID_HASH',
  'DEPGRAPH_INVALID_IGNORE_PATTERN',
  'DEPGRAPH_INVALID_PATH',
  'DEPGRAPH_INVARIANT',
  'DEPGRAPH_RULE_INVALID',
  'DEPGRAPH_STATE_CORRUPT',
  'DEPGRAPH_TASK_NOT_READY',
  'DEPGRAPH_UNKNOWN_TASK',
  // transport
  'TRANSPORT_AUTH_FAILED',
  'TRANSPORT_CHANNEL_FAILED',
  'TRANSPORT_COMMAND_TIMEOUT',
  'TRANSPORT_CONNECTION_LOST',
  'TRANSPORT_CONNECTION_REFUSED',
  'TRANSPORT_CONNECT_TIMEOUT',
  'TRANSPORT_DESTINATION_EXISTS',
  'TRANSPORT_DNS',
  'TRANSPORT_HOST_KEY_MISMATCH',
  'TRANSPORT_HOST_KEY_UNKNOWN',
  'TRANSPORT_KEY_UNREADABLE',
  'TRANSPORT_POOL_CLOSED',
  'TRANSPORT_PROTOCOL',
  'TRANSPORT_REMOTE_COMMAND_FAILED',
  'TRANSPORT_SFTP',
  'TRANSPORT_UNSAFE_NAME',
  'TRANSPORT_UNSAFE_PATH',
  'TRANSPORT_UNSUPPORTED_FILE',
  'TRANSPORT_VERIFY_FAILED',
  // testkit
  'TESTKIT_BINARY_MISSING',
  'TESTKIT_SERVER_START',
  // chef
  'CP_CHEF_DEFINITION',
  'CP_CHEF_DISCOVERY',
  'CP_CHEF_INPUT_FETCH',
  'CP_CHEF_NO_QUEUE',
  'CP_CHEF_PODS',
  'CP_CHEF_PROJECT_INACTIVE',
  'CP_CHEF_PROJECT_INVALID',
  'CP_CHEF_PROJECT_MISSING',
  'CP_CHEF_REQUEST_MISMATCH',
  'CP_CHEF_UNSAFE_PATH',
  'CP_CHEF_UNSAFE_STEM',
  'CP_TASK_NO_RECORD',
  'CP_TASK_WAIT_TIMEOUT',
  // runner
  'CP_RECORD_CONFLICT',
  'CP_STAGE_REFUSED',
  'CP_TASK_LOG_MOVED',
  'CP_TASK_REFUSED',
  // majordomo
  'CP_HOST_NOT_ALLOWED',
  'CP_LOG_OUTSIDE_ROOTS',
  'CP_NO_LOG',
  'CP_NOT_A_MEMBER',
  'CP_NOT_LEADER',
  'CP_PROJECT_INACTIVE',
  'CP_TASK_CONTROL',
  'CP_TASK_NO_LOG',
  'CP_TOKEN_REVOKED',
  'CP_UNKNOWN_ARTEFACT',
  'CP_UNKNOWN_BUILD',
  'CP_UNKNOWN_TASK',
  // cpctrl
  'CP_BAD_DESCRIPTION',
  'CP_BAD_NAME',
  'CP_BAD_ROLE',
  'CP_BAD_USER',
  'CP_BUILD_REFUSED',
  'CP_BUILD_TIMEOUT',
  'CP_FILE',
  'CP_NO_ACCOUNT',
  'CP_NO_AUTH_DIR',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

export interface CpErrorOptions extends ErrorOptions {
  /** Whether the same call may succeed later. Default false: a retry must be asked for. */
  readonly retryable?: boolean;
}

/**
 * The base of every ComputePods error. `C` narrows the code a class may carry; a code that
 * came over the wire from another service (RemoteError) is kept as sent, hence `string`.
 */
export class CpError<C extends string = ErrorCode> extends Error {
  readonly code: C;
  readonly retryable: boolean;
  constructor(code: C, message: string, options: CpErrorOptions = {}) {
    super(message, 'cause' in options ? { cause: options.cause } : undefined);
    this.code = code;
    this.retryable = options.retryable ?? false;
    this.name = new.target.name;
  }
}

/** A name (project, chef, resource...) cannot be used where it must go (a NATS subject token, a path). */
export class InvalidNameError extends CpError {
  constructor(
    readonly field: string,
    readonly value: string,
    rule: string,
  ) {
    super('CP_INVALID_NAME', `invalid ${field} ${JSON.stringify(value)}: ${rule}`);
  }
}

/**
 * A path would leave its root or be misread (absolute, `..`, NUL, a control character, a name a
 * shell or a command would read as more than a name). One class for every package: the code
 * says which check refused it (`CP_UNSAFE_PATH` a project-relative path, `TRANSPORT_UNSAFE_*` a
 * path or name given to a transfer or a remote command). Never retryable: fix the input.
 */
export class UnsafePathError extends CpError<
  'CP_UNSAFE_PATH' | 'TRANSPORT_UNSAFE_NAME' | 'TRANSPORT_UNSAFE_PATH'
> {
  constructor(
    readonly path: string,
    message: string,
    code: 'CP_UNSAFE_PATH' | 'TRANSPORT_UNSAFE_NAME' | 'TRANSPORT_UNSAFE_PATH' = 'CP_UNSAFE_PATH',
  ) {
    super(code, message);
  }
}

/**
 * A key (a path, a task id) would make a KV key or subject longer than NATS allows: the server
 * would drop the connection that sent it, so it is refused here.
 */
export class KeyTooLongError extends CpError {
  constructor(key: string, max: number) {
    super(
      'CP_KEY_TOO_LONG',
      `key ${JSON.stringify(key.slice(0, 80))}… is too long for a KV key (over ${max} characters once encoded); use a shorter path or name`,
    );
  }
}

/** A resource, profile or setting failed validation. `issues` holds one "path: problem" line each. */
export class InvalidConfigError extends CpError {
  constructor(
    readonly what: string,
    readonly issues: readonly string[],
    options?: ErrorOptions,
  ) {
    super(
      'CP_INVALID_CONFIG',
      `invalid ${what}:\n${issues.map((i) => `  ${i}`).join('\n')}\nfix the field(s) named above and submit it again`,
      options,
    );
  }
}
