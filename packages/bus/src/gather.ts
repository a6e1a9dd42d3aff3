import type { NatsConnection, RequestManyOptions } from '@nats-io/transport-node';
import type { z } from 'zod';

/**
 * Asks every responder on `subject` at once (nats.js requestMany, ended by `options`' strategy)
 * and returns, in arrival order, the answers `schema` accepts. An answer that is no JSON or not
 * of the schema is skipped (a responder of another kind or version: not fatal, and not ours to
 * dead-letter); nobody answering is []. For $SRV discovery: PING, INFO, STATS.
 */
export async function gatherReplies<S extends z.ZodType>(
  nc: NatsConnection,
  subject: string,
  schema: S,
  options: Partial<RequestManyOptions>,
): Promise<Array<z.infer<S>>> {
  const found: Array<z.infer<S>> = [];
  try {
    for await (const m of await nc.requestMany(subject, '', options)) {
      let json: unknown;
      try {
        json = m.json();
      } catch {
        continue;
      }
      const parsed = schema.safeParse(json);
      if (parsed.success) found.push(parsed.data);
    }
  } catch {
    // Nobody answers at all: the no-responders status ends the gathering.
  }
  return found;
}
