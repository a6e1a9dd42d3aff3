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
