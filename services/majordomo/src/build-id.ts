import { createHash } from 'node:crypto';

/**
 * The build key: (rule, target, input hashes). The same key means the same work, so it is the
 * JetStream message id (duplicates dropped) and the result-cache key (Bazel's action key).
 * A forced rebuild adds a nonce: a new key that neither the dedupe nor the cache answers.
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
