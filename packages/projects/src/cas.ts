import { setTimeout as sleep } from 'node:timers/promises';
import { ProjectError } from './errors.js';

// JetStream's answers when an expected-last-sequence header does not match: someone else wrote
// the key since we read it (KV update/create/delete with a revision).
const WRONG_LAST_SEQUENCE = new Set([10071, 10164]);

/**
 * True when a revision-checked KV write failed because the key changed since it was read:
 * decided by the JetStream API error code nats.js puts on the error, never by its message.
 */
export function isConflict(err: unknown): boolean {
  const code = (err as { code?: unknown } | null | undefined)?.code;
  return typeof code === 'number' && WRONG_LAST_SEQUENCE.has(code);
}

const ATTEMPTS = 200;

/**
 * Runs a read-modify-write until its revision-checked write succeeds: `attempt` reads, decides
 * and writes with the revision it read; a conflict means another writer won, so it reads again.
 * Any other error (a refusal, NATS down) ends the loop. A short random pause between attempts
 * keeps many writers of one key from colliding in lock-step.
 */
export async function casLoop<T>(what: string, attempt: () => Promise<T>): Promise<T> {
  for (let i = 0; i < ATTEMPTS; i++) {
    try {
      return await attempt();
    } catch (err) {
      if (!isConflict(err)) throw err;
      await sleep(Math.random() * Math.min(2 + i, 25));
    }
  }
  throw new ProjectError(
    'CP_CONFLICT',
    `${what}: the record kept changing under ${ATTEMPTS} attempts; run the command again`,
  );
}
