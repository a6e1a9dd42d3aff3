import { issuesOf, type MessageType } from '@computepods/protocol';
import type { Msg } from '@nats-io/transport-node';
import type { z } from 'zod';
import type { Bus } from './bus.js';
import { type Decoded, type DecodedView, decode, decodeView, jsonOf } from './decode.js';
import { MessageInvalidError } from './errors.js';
import { subscribeMessages } from './subscribe.js';

/** What every listener takes besides how its messages are read. */
interface CommonOptions<M> {
  /** Called with each valid message (and the raw one, to answer it); its failures are logged. */
  readonly handler: (msg: M, raw: Msg) => void | Promise<void>;
  /** The warning logged for an invalid message (default: `invalid <what> dead-lettered`). */
  readonly invalidMsg?: string;
  /** A queue group: one subscriber of the group gets each message. */
  readonly queue?: string;
  /**
   * Request/reply: an invalid message that expects a reply is also answered, with
   * `{ ok: false, error: { code: 'CP_MESSAGE_INVALID', message, field } }` naming the first
   * field it fails on (as bus's errorReply words it), so the asker need not wait for a timeout.
   */
  readonly answerInvalid?: boolean;
}

export interface ListenOptions<T extends MessageType> extends CommonOptions<Decoded<T>> {
  /** Message types accepted on the subject; anything else is dead-lettered. */
  readonly accept: readonly T[];
  /** The project messages must be for (default the bus's). */
  readonly project?: string;
}

export interface ListenJsonOptions<S extends z.ZodType> extends CommonOptions<z.infer<S>> {
  /** The shape of a message: plain JSON, no envelope. */
  readonly schema: S;
}

export interface Listener {
  unsubscribe(): void;
}

/**
 * A core NATS subscription (no JetStream consumer: nothing to ack, nothing redelivered) whose
 * messages are decoded as `consume` decodes them: valid envelopes of the accepted types for the
 * bus's project reach the handler; anything else is logged with the fields it fails on and
 * dead-lettered (and answered, with answerInvalid). Nothing a message holds can stop the
 * subscription: nats.js calls a subscription's callback inside its socket reader, and an
 * exception thrown there ends the reader (it logs "reader closed" and the connection reads
 * nothing more).
 */
export function listen<T extends MessageType>(
  bus: Bus,
  subject: string,
  options: ListenOptions<T>,
): Listener {
  const project = options.project ?? bus.project;
  return subscribe(bus, subject, (data) => decode(data, options.accept, project), {
    ...options,
    cidOf: (m) => m.cid,
    invalidMsg: options.invalidMsg ?? `invalid ${options.accept.join(' or ')} dead-lettered`,
  });
}

export interface ListenViewOptions<T extends MessageType, S extends z.ZodType>
  extends CommonOptions<DecodedView<T, S>> {
  /** The one message type accepted on the subject; anything else is dead-lettered. */
  readonly type: T;
  /** What the handler reads of a body (a pick of the type's schema): the rest goes unchecked. */
  readonly view: S;
}

/**
 * As `listen`, for one message type read through a view of its body (decodeView): a follower
 * of big messages that reads a few fields of each (the fswatcher of MajorDomo's artefact
 * records) validates those, not the whole body.
 */
export function listenView<T extends MessageType, S extends z.ZodType>(
  bus: Bus,
  subject: string,
  options: ListenViewOptions<T, S>,
): Listener {
  return subscribe(
    bus,
    subject,
    (data) => decodeView(data, options.type, options.view, bus.project),
    {
      ...options,
      cidOf: (m) => m.cid,
      invalidMsg: options.invalidMsg ?? `invalid ${options.type} dead-lettered`,
    },
  );
}

/**
 * As `listen`, for messages that are a plain JSON body (no envelope) of the given schema: a
 * worker's requests to the runner that started it.
 */
export function listenJson<S extends z.ZodType>(
  bus: Bus,
  subject: string,
  options: ListenJsonOptions<S>,
): Listener {
  return subscribe(bus, subject, (data) => parseJson(data, options.schema), {
    ...options,
    cidOf: () => undefined,
    invalidMsg: options.invalidMsg ?? 'invalid request dead-lettered',
  });
}

/** Plain JSON of a schema, or a MessageInvalidError naming the field (as errorReply words it). */
function parseJson<S extends z.ZodType>(data: Uint8Array, schema: S): z.infer<S> {
  const parsed = schema.safeParse(jsonOf(data));
  if (!parsed.success) throw new MessageInvalidError('invalid request', issuesOf(parsed.error));
  return parsed.data;
}

function subscribe<M>(
  bus: Bus,
  subject: string,
  parse: (data: Uint8Array) => M,
  options: CommonOptions<M> & { invalidMsg: string; cidOf: (msg: M) => string | undefined },
): Listener {
  const failed = (err: unknown, m: Msg, cid?: string) =>
    bus.logger.error({ err, subject: m.subject, cid }, 'message handler failed');
  return subscribeMessages(
    bus.nc,
    bus.logger,
    subject,
    (m) => {
      let msg: M;
      try {
        msg = parse(m.data);
      } catch (err) {
        const e =
          err instanceof MessageInvalidError ? err : new MessageInvalidError(String(err), []);
        bus.logger.warn(
          { subject: m.subject, reason: e.reason, issues: e.issues },
          options.invalidMsg,
        );
        void bus.deadLetter(m.subject, m.data, e.reason, e.issues);
        if (options.answerInvalid && m.reply) m.respond(JSON.stringify(invalidAnswer(e)));
        return;
      }
      try {
        void Promise.resolve(options.handler(msg, m)).catch((err: unknown) =>
          failed(err, m, options.cidOf(msg)),
        );
      } catch (err) {
        failed(err, m, options.cidOf(msg));
      }
    },
    options.queue ? { queue: options.queue } : {},
  );
}

/** The answer to an invalid request: what errorReply (bus.ts) says of a MessageInvalidError. */
function invalidAnswer(e: MessageInvalidError) {
  return {
    ok: false,
    error: {
      code: e.code,
      message: e.message,
      ...(e.field !== undefined ? { field: e.field } : {}),
    },
  };
}
