import { createHash } from 'node:crypto';

/**
 * The build key: (rule, target, input hashes). The same key means the same work, so it is the
 * result-cache key (Bazel's action key), and the runner's task ids derive from it (a build's
 * task runs once). A forced rebuild adds a nonce: a new key that no cache or record answers.
 */
export function buildId(
  ruleId: string,
  taskId: string,
  inputs: Readonly<Record<string, string>>,
  nonce = '',
): string {
  const h = createHash('sha256')
    .update(ruleId)
    .update('\0')
    .update(taskId)
    .update('\0')
    .update(nonce);
  const sorted = Object.entries(inputs).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  for (const [path, hash] of sorted) h.update('\0').update(path).update('=').update(hash);
  return h.digest('hex').slice(0, 32);
}

/**
 * A group build's key (dispatcher.ts #dispatchGroup): from its steps' own build keys, in order.
 * The same steps with the same inputs make the same group: a request sent again (a restart)
 * maps to the same task.
 */
export function groupBuildId(stepBuildIds: readonly string[]): string {
  const h = createHash('sha256').update('group');
  for (const id of stepBuildIds) h.update('\0').update(id);
  return h.digest('hex').slice(0, 32);
}
