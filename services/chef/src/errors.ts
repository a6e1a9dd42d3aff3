import { CpError } from '@computepods/protocol';

/** CP_PODS (or the file it names) is unreadable or invalid; the message names the pod and field. */
export class PodsConfigError extends CpError {
  constructor(detail: string, options?: ErrorOptions) {
    super(
      'CP_CHEF_PODS',
      `CP_PODS: ${detail}; give JSON (or a JSON file path) mapping pod name → {host, port, user, key, knownHosts, root}`,
      options,
    );
  }
}

/** An input could not be brought into the workspace from the pod that holds it. */
export class InputFetchError extends CpError {
  constructor(
    readonly path: string,
    detail: string,
    retryable: boolean,
    options?: ErrorOptions,
  ) {
    super('CP_CHEF_INPUT_FETCH', `input ${path}: ${detail}`, { ...options, retryable });
  }
}

/**
 * A rule's command template names a placeholder the build cannot fill. Never retryable: the
 * chef definition must change.
 */
export class CommandTemplateError extends CpError {
  constructor(
    readonly placeholder: string,
    detail: string,
  ) {
    super(
      'CP_CHEF_DEFINITION',
      `command placeholder ${placeholder}: ${detail}; fix the rule's command in the chef definition`,
    );
  }
}

/** A successful build left no readable dependency record (depfile, .fls, .aux) where the rule says. */
export class DiscoveryError extends CpError {
  constructor(ruleId: string, detail: string, options?: ErrorOptions) {
    super('CP_CHEF_DISCOVERY', `rule ${ruleId}: ${detail}`, options);
  }
}

/**
 * A build request this chef will not carry out: a stem or path that would leave the workspace,
 * paths that differ from what the chef's own rule gives, no queue for the rule, an inactive
 * project. Reported as a failed BuildResult (`<code>: <message>`), never retried: the same
 * request would be refused again.
 */
export type BuildRefusalCode =
  | 'CP_CHEF_UNSAFE_STEM'
  | 'CP_CHEF_UNSAFE_PATH'
  | 'CP_CHEF_REQUEST_MISMATCH'
  | 'CP_CHEF_NO_QUEUE'
  | 'CP_CHEF_PROJECT_INACTIVE'
  | 'CP_CHEF_PROJECT_INVALID'
  | 'CP_CHEF_PROJECT_MISSING';

export class BuildRefusedError extends CpError<BuildRefusalCode> {
  constructor(code: BuildRefusalCode, message: string, options?: ErrorOptions) {
    super(code, message, options);
  }
}
