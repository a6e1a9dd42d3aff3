import {
  Envelope,
  issuesOf,
  type MessageType,
  messageTypes,
  SCHEMA_VERSION,
} from '@computepods/protocol';
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
  const env = decodeEnvelope(data, accept, project);
  const body = messageTypes[env.type].safeParse(env.body);
  if (!body.success)
    throw new MessageInvalidError(`invalid ${env.type} body`, issuesOf(body.error, ['body']));
  return { ...env, body: body.data } as Decoded<T>;
}

/**
 * A KV record's value (no envelope) as a message of `type`: the value validated as its body, the
 * envelope's fields from the record (`meta`: its stream sequence as the id, its key as the cid,
 * its write time). For a consumer of a bucket's stream (ConsumeOptions.records).
 */
export function decodeRecord<T extends MessageType>(
  data: Uint8Array,
  type: T,
  meta: { project: string; id: string; cid: string; time: string },
): Decoded<T> {
  const body = messageTypes[type].safeParse(jsonOf(data));
  if (!body.success)
    throw new MessageInvalidError(`invalid ${type} record`, issuesOf(body.error, ['body']));
  return {
    v: SCHEMA_VERSION,
    source: 'kv',
    ...meta,
    type,
    body: body.data,
  } as Decoded<T>;
}

/** A message of one type whose body is read through `view` (DecodedView). */
export type DecodedView<T extends MessageType, S extends z.ZodType> = Envelope<z.infer<S>> & {
  type: T;
};

/**
 * As decode, for a reader of one type that reads only part of its body: the body is validated
 * by `view` (a pick of the type's schema, say), whatever else it holds left unchecked and
 * unread. For a follower of a big message it does not use whole (the fswatcher of MajorDomo's
 * artefact records).
 */
export function decodeView<T extends MessageType, S extends z.ZodType>(
  data: Uint8Array,
  type: T,
  view: S,
  project?: string,
): DecodedView<T, S> {
  const env = decodeEnvelope(data, [type], project);
  const body = view.safeParse(env.body);
  if (!body.success)
    throw new MessageInvalidError(`invalid ${type} body`, issuesOf(body.error, ['body']));
  return { ...env, body: body.data } as DecodedView<T, S>;
}

/**
 * A message's bytes as JSON, or a MessageInvalidError ('malformed JSON'), its cause named as an
 * issue too: a dead letter's issues say what was wrong, not only its reason.
 */
export function jsonOf(data: Uint8Array): unknown {
  try {
    return JSON.parse(new TextDecoder().decode(data));
  } catch (err) {
    throw new MessageInvalidError('malformed JSON', [
      { path: '', message: `not JSON: ${(err as Error).message}` },
    ]);
  }
}

/** The validated envelope of an accepted type for `project`, its body not yet checked. */
function decodeEnvelope<T extends MessageType>(
  data: Uint8Array,
  accept: readonly T[],
  project: string | undefined,
): Envelope<unknown> & { type: T } {
  const env = Envelope.safeParse(jsonOf(data));
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
  return { ...env.data, type };
}
