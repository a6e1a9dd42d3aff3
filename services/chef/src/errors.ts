/** CP_PODS (or the file it names) is unreadable or invalid; the message names the pod and field. */
export class PodsConfigError extends Error {
  readonly code = 'CP_CHEF_PODS';
  readonly retryable = false;
  constructor(detail: string, options?: ErrorOptions) {
    super(
      `CP_PODS: ${detail}; give JSON (or a JSON file path) mapping pod name → {host, port, user, key, knownHosts, root}`,
      options,
    );
    this.name = 'PodsConfigError';
  }
}

/** An input could not be brought into the workspace from the pod that holds it. */
export class InputFetchError extends Error {
  readonly code = 'CP_CHEF_INPUT_FETCH';
  constructor(
    readonly path: string,
    detail: string,
    readonly retryable: boolean,
    options?: ErrorOptions,
  ) {
    super(`input ${path}: ${detail}`, options);
    this.name = 'InputFetchError';
  }
}

/** A successful build left no readable dependency record (depfile, .fls, .aux) where the rule says. */
export class DiscoveryError extends Error {
  readonly code = 'CP_CHEF_DISCOVERY';
  readonly retryable = false;
  constructor(ruleId: string, detail: string, options?: ErrorOptions) {
    super(`rule ${ruleId}: ${detail}`, options);
    this.name = 'DiscoveryError';
  }
}

/**
 * A build request this chef will not carry out: a stem or path that would leave the workspace,
 * paths that differ from what the chef's own rule gives, no queue for the rule, an inactive
 * project. Reported as a failed BuildResult (`<code>: <message>`), never retried: the same
 * request would be refused again.
 */
export class BuildRefusedError extends Error {
  readonly retryable = false;
  constructor(
    readonly code:
      | 'CP_CHEF_UNSAFE_STEM'
      | 'CP_CHEF_UNSAFE_PATH'
      | 'CP_CHEF_REQUEST_MISMATCH'
      | 'CP_CHEF_NO_QUEUE'
      | 'CP_CHEF_PROJECT_INACTIVE'
      | 'CP_CHEF_PROJECT_INVALID'
      | 'CP_CHEF_PROJECT_MISSING',
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'BuildRefusedError';
  }
}
