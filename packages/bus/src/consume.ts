import type { MessageType } from '@computepods/protocol';
import type { ConsumerMessages, JsMsg } from '@nats-io/jetstream';
import type { Bus } from './bus.js';
import { PULL, watchConsumer } from './consumer-watch.js';
import { type Decoded, decode, decodeRecord } from './decode.js';
import { isRetryable, type MessageInvalidError } from './errors.js';
import { issuesFromError, isValidationError } from './issues.js';
import type { Logger } from './logger.js';
import { ServiceResponder } from './service.js';
import { withNextWrite } from './turn-batched-transport.js';

export interface MessageContext {
  readonly subject: string;
  /** The message's sequence in its stream. */
  readonly sequence: number;
  readonly deliveries: number;
  readonly logger: Logger;
  /** Tells JetStream the handler is still working (long builds); called automatically too. */
  working(): void;
}

export interface ConsumeOptions<T extends MessageType> {
  readonly stream: string;
  readonly durable: string;
  readonly filterSubject?: string;
  /** Message types accepted on this consumer; anything else is dead-lettered. */
  readonly accept: readonly T[];
  readonly handler: (msg: Decoded<T>, ctx: MessageContext) => Promise<void>;
  /** Handlers running at once (default 1: in order). */
  readonly concurrency?: number;
  readonly maxDeliver?: number;
  readonly ackWaitMs?: number;
  /** Unacknowledged messages over every client of the consumer (default concurrency × 4). */
  readonly maxAckPending?: number;
  /**
   * Pull ahead of the handlers (default true, fastest). false: pull one message only when a
   * handler slot is free, so clients sharing the consumer split the work by their capacity
   * instead of the first one buffering what the others could take.
   */
  readonly prefetch?: boolean;
  /**
   * Wait for the server to confirm each ack (default true). false: a plain ack, one message and
   * no round trip, for a handler whose work is idempotent on redelivery (a lost ack only brings
   * the message back after the ack wait). It goes with the connection's next socket write, at
   * most PLAIN_ACK_HOLD_MS later (PLAIN ACKS below).
   */
  readonly confirmAck?: boolean;
  /**
   * The stream is a KV bucket's (filterSubject `$KV.<bucket>.>`): each message is a record's
   * value, no envelope, read as the body of the one accepted type (decodeRecord: the id is its
   * stream sequence, the cid its key). A delete or purge of a key is acknowledged unread.
   */
  readonly records?: boolean;
  /**
   * Made for the first time, the durable starts after the stream's last message (ensureConsumer):
   * for a bucket's stream, the writes from then on, not every record it keeps.
   */
  readonly deliverNew?: boolean;
}

/**
 * PLAIN ACKS. A plain ack is sent when the handler returns, often in a turn of its own (the
 * handler's writes were confirmed, nothing else to send): a socket write for one small frame,
 * and a read for nats-server. pnpm bench cbuild: MajorDomo's ack of each build result was a
 * write(2) of its own, ~1 of its ~4 a compile. Held until the connection's next write (the next
 * result's records, an announcement), it costs none; in a turn that writes already, it goes
 * with that write at once. Nothing waits for a plain ack: held, it can only come back as a
 * redelivery after the ack wait, as a lost one does, which is why a handler asks for plain
 * acks; a consumer's stop sends those it holds. Bounded (100 ms: past MajorDomo's 50 ms
 * announcement hold, which writes after a result's records are stored) so that a consumer's
 * max_ack_pending does not fill with held acks for long.
 */
const PLAIN_ACK_HOLD_MS = 100;

export interface Consumer {
  stop(): Promise<void>;
}

/**
 * When a prefetching consumer pulls again: once a quarter of what it asked for is still to come
 * (nats.js's default is three quarters), for the rest. nats.js pulls whenever the messages still
 * to come fall to this many, and asks for the difference: at its default MajorDomo's results
 * consumer (8 asked for) pulled every 2 results and a chef's requests consumer every 4, each pull
 * a JetStream API request that nats-server handles and a message the service makes (pnpm bench
 * cbuild counted 0.75 pulls a compile). A quarter left still covers a burst while the pull is on
 * its way; what a pull asks for is as before (max_messages), so replicas sharing a consumer
 * split the work as they did.
 */
export function pullAgainAt(maxMessages: number): number {
  return Math.max(1, Math.floor(maxMessages / 4));
}

const KV_PREFIX = '$KV.';

/** A KV delete or purge marker (its operation header), not a value. */
function isRemoval(m: JsMsg): boolean {
  const op = m.headers?.get('KV-Operation');
  return op === 'DEL' || op === 'PURGE';
}

/** Redelivery delay after a retryable failure: 0.5 s, 1 s, 2 s ... capped at 30 s. */
function backoffMs(deliveries: number): number {
  return Math.min(500 * 2 ** Math.max(deliveries - 1, 0), 30_000);
}

export async function startConsumer<T extends MessageType>(
  bus: Bus,
  options: ConsumeOptions<T>,
): Promise<Consumer> {
  const consumer = await bus.js.consumers.get(options.stream, options.durable);
  const concurrency = Math.max(options.concurrency ?? 1, 1);
  const maxDeliver = options.maxDeliver ?? 5;
  const ackWait = options.ackWaitMs ?? 30_000;
  const stats = bus.srv?.endpoint(
    options.durable,
    options.filterSubject ?? options.stream,
    options.durable,
  );
  const prefetch = options.prefetch ?? true;
  // Pulls expire after 5 s rather than nats.js's 30 s: on a cluster, a pull waiting at a
  // consumer leader that is killed is lost without a word, and only missed heartbeats make the
  // client pull again, from the new leader; PULL (consumer-watch.ts) pulls again at once.
  const maxMessages = concurrency * 2;
  const messages: ConsumerMessages | undefined = prefetch
    ? await consumer.consume({
        max_messages: maxMessages,
        threshold_messages: pullAgainAt(maxMessages),
        ...PULL,
      })
    : undefined;
  if (messages)
    void watchConsumer(
      messages,
      consumer,
      { stream: options.stream, durable: options.durable },
      bus.logger,
    ).catch((err) => bus.logger.debug({ err: String(err) }, 'consumer status ended'));
  const inFlight = new Set<Promise<void>>();
  let stopping = false;
  /** Plain acks waiting for the connection's next write (PLAIN ACKS). */
  let held: JsMsg[] = [];
  const sendHeld = () => {
    const acks = held;
    held = [];
    for (const m of acks) m.ack();
  };
  const plainAck = (m: JsMsg) => {
    held.push(m);
    if (held.length === 1) withNextWrite(bus.nc, sendHeld, PLAIN_ACK_HOLD_MS);
  };

  const handle = async (m: JsMsg): Promise<void> => {
    const started = process.hrtime.bigint();
    const deliveries = m.info.deliveryCount;
    let decoded: Decoded<T>;
    try {
      if (options.records) {
        if (isRemoval(m)) {
          m.ack();
          return;
        }
        decoded = decodeRecord(m.data, options.accept[0] as T, {
          project: bus.project,
          id: `${options.stream}:${m.seq}`,
          cid: m.subject.slice(m.subject.indexOf('.', KV_PREFIX.length) + 1).slice(0, 128),
          time: new Date(m.info.timestampNanos / 1e6).toISOString(),
        });
      } else decoded = decode(m.data, options.accept, bus.project);
    } catch (err) {
      const e = err as MessageInvalidError;
      bus.logger.warn(
        { subject: m.subject, reason: e.reason, issues: e.issues },
        `dead-lettered: ${e.message}`,
      );
      await bus.deadLetter(m.subject, m.data, e.reason, e.issues, deliveries);
      m.term(); // no reason: nats-server 2.9 ignores "+TERM <reason>" entirely
      if (stats) ServiceResponder.record(stats, started, e.message);
      return;
    }
    const logger = bus.logger.child({ cid: decoded.cid, msgType: decoded.type, msgId: decoded.id });
    const timer = setInterval(() => m.working(), Math.max(ackWait / 3, 500));
    try {
      await options.handler(decoded, {
        subject: m.subject,
        sequence: m.seq,
        deliveries,
        logger,
        working: () => m.working(),
      });
      if (options.confirmAck === false) plainAck(m);
      else
        await m
          .ackAck()
          .catch((err) =>
            logger.warn({ err }, 'ack not confirmed; the message may be redelivered'),
          );
      if (stats) ServiceResponder.record(stats, started);
    } catch (err) {
      const e = err as Error;
      if (stats) ServiceResponder.record(stats, started, e.message);
      // A ZodError is about the message (or what the handler made of it): it fails again.
      if (isValidationError(err) || !isRetryable(err) || deliveries >= maxDeliver) {
        const issues = issuesFromError(err);
        logger.error({ err, issues, deliveries }, 'handler failed for good; dead-lettered');
        await bus.deadLetter(
          m.subject,
          m.data,
          `handler failed: ${isValidationError(err) ? 'invalid data' : e.message}`,
          issues,
          deliveries,
        );
        m.term(); // no reason: nats-server 2.9 ignores "+TERM <reason>" entirely
      } else {
        logger.warn(
          { err: e.message, deliveries, retryInMs: backoffMs(deliveries) },
          'handler failed; will retry',
        );
        m.nak(backoffMs(deliveries));
      }
    } finally {
      clearInterval(timer);
    }
  };

  const start = (m: JsMsg) => {
    const p = handle(m).catch((err) => bus.logger.error({ err }, 'unexpected consumer failure'));
    inFlight.add(p);
    void p.finally(() => inFlight.delete(p));
  };

  const loop = messages
    ? (async () => {
        for await (const m of messages) {
          if (stopping) {
            m.nak();
            continue;
          }
          start(m);
          if (inFlight.size >= concurrency) await Promise.race(inFlight);
        }
      })()
    : (async () => {
        while (!stopping) {
          if (inFlight.size >= concurrency) {
            await Promise.race(inFlight);
            continue;
          }
          // One pull request per free slot; it expires so that stop() is heard.
          const m = await consumer.next({ expires: 2_000 }).catch(async (err) => {
            if (!stopping) {
              bus.logger.warn({ err: String(err) }, 'pull failed; trying again');
              await new Promise((r) => setTimeout(r, 500));
            }
            return null;
          });
          if (!m) continue;
          if (stopping) m.nak();
          else start(m);
        }
      })();

  return {
    async stop() {
      stopping = true;
      await messages?.close().catch(() => undefined);
      await loop.catch(() => undefined);
      await Promise.allSettled(inFlight);
      sendHeld();
    },
  };
}
