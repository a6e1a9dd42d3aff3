import type { MessageType } from '@computepods/protocol';
import type { Msg } from '@nats-io/transport-node';
import type { Bus } from './bus.js';
import { type Decoded, decode } from './decode.js';
import { MessageInvalidError } from './errors.js';

export interface ListenOptions<T extends MessageType> {
  /** Message types accepted on the subject; anything else is dead-lettered. */
  readonly accept: readonly T[];
  /** Called with each valid message (and the raw one, to answer it); its failures are logged. */
  readonly handler: (msg: Decoded<T>, raw: Msg) => void | Promise<void>;
  /** The project messages must be for (default the bus's). */
  readonly project?: string;
  /** The warning logged for an invalid message (default: `invalid <types> dead-lettered`). */
  readonly invalidMsg?: string;
}

export interface Listener {
  unsubscribe(): void;
}

/**
 * A core NATS subscription (no JetStream consumer: nothing to ack, nothing redelivered) whose
 * messages are decoded as `consume` decodes them: valid envelopes of the accepted types for the
 * bus's project reach the handler; anything else is logged with the fields it fails on and
 * dead-lettered, and not answered. Nothing a message holds can stop the subscription: nats.js
 * calls a subscription's callback inside its socket reader, and an exception thrown there ends
 * the reader (it logs "reader closed" and the connection reads nothing more).
 */
export function listen<T extends MessageType>(
  bus: Bus,
  subject: string,
  options: ListenOptions<T>,
): Listener {
  const invalidMsg = options.invalidMsg ?? `invalid ${options.accept.join(' or ')} dead-lettered`;
  const failed = (err: unknown, m: Msg, cid?: string) =>
    bus.logger.error({ err, subject: m.subject, cid }, 'message handler failed');
  return bus.nc.subscribe(subject, {
    callback: (_err, m) => {
      let msg: Decoded<T>;
      try {
        msg = decode(m.data, options.accept, options.project ?? bus.project);
      } catch (err) {
        const e =
          err instanceof MessageInvalidError ? err : new MessageInvalidError(String(err), []);
        bus.logger.warn({ subject: m.subject, reason: e.reason, issues: e.issues }, invalidMsg);
        void bus.deadLetter(m.subject, m.data, e.reason, e.issues);
        return;
      }
      try {
        void Promise.resolve(options.handler(msg, m)).catch((err: unknown) =>
          failed(err, m, msg.cid),
        );
      } catch (err) {
        failed(err, m, msg.cid);
      }
    },
  });
}
