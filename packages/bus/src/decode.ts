import { Envelope, issuesOf, type MessageType, messageTypes } from '@computepods/protocol';
import type { z } from 'zod';
import { MessageInvalidError } from './errors.js';

// Kept where bus users import it from; written once, in protocol.
export { issuesOf };

export type Decoded<T extends MessageType> = Envelope<z.infer<(typeof messageTypes)[T]>> & {
  type: T;
};

/**
 * Parses bytes into a validated envelope of one of the accepted types, or throws
 * MessageInvalidError naming the failing fields (paths like `body.events.0.path`).
 */
export function decode<T extends MessageType>(
  data: Uint8Array,
  accept: readonly T[],
  project?: string,
): Decoded<T> {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(data));
  } catch (err) {
    // Named as an issue too: a dead letter's issues say what was wrong, not only its reason.
    throw new MessageInvalidError('malformed JSON', [
      { path: '', message: `not JSON: ${(err as Error).message}` },
    ]);
  }
  const env = Envelope.safeParse(json);
  if (!env.success) throw new MessageInvalidError('invalid envelope', issuesOf(env.error));
  const type = env.data.type as T;
  if (!accept.includes(type)) {
    throw new MessageInvalidError(`unexpected message type ${JSON.stringify(type)}`, [
      { path: 'type', message: `expected one of ${accept.join(', ')}` },
    ]);
  }
  if (project !== undefined && env.data.project !== project) {
    throw new MessageInvalidError(
      `message for project ${env.data.project} on ${project}'s subject`,
      [{ path: 'project', message: `expected ${project}` }],
    );
  }
  const body = messageTypes[type].safeParse(env.data.body);
  if (!body.success)
    throw new MessageInvalidError(`invalid ${type} body`, issuesOf(body.error, ['body']));
  return { ...env.data, type, body: body.data } as Decoded<T>;
}
