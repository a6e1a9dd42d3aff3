import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import type { Logger } from './logger.js';

/** The error logged when the server ends a subscription (its `subject` and `err` alongside). */
export const SUBSCRIPTION_ENDED =
  'subscription ended by the server; nothing more arrives on it (check this service’s permissions)';

/**
 * A core NATS subscription whose handler sees messages only. When the server refuses a
 * subscription (a permissions violation), nats.js calls its callback once with the error and an
 * empty object where the message goes, and closes it; read as a message, that object (no `data`,
 * no `subject`) threw in a service's handler and crashed the process on an unhandled rejection.
 * Here the error is logged, naming the subject, and the handler is not called.
 */
export function subscribeMessages(
  nc: NatsConnection,
  logger: Logger,
  subject: string,
  handler: (m: Msg) => void,
  options: { readonly queue?: string } = {},
): Subscription {
  return nc.subscribe(subject, {
    ...(options.queue ? { queue: options.queue } : {}),
    callback: (err, m) => {
      if (err) {
        logger.error({ subject, err: err.message }, SUBSCRIPTION_ENDED);
        return;
      }
      handler(m);
    },
  });
}
