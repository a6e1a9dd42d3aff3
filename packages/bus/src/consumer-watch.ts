import {
  type ConsumerMessages,
  JetStreamApiCodes,
  JetStreamApiError,
  type Consumer as JsConsumer,
} from '@nats-io/jetstream';
import type { Logger } from './logger.js';

/**
 * Pull settings for a durable consumer that must come back fast when the node leading it dies.
 *
 * `bind: true`: on two missed heartbeats nats.js pulls again at once (resetPendingNoInfo)
 * instead of first asking the consumer's info (resetPendingWithInfo). That info request is
 * answered only by a consumer leader: while a cluster elects one (4-9 s after kill -9) it waits
 * the whole JetStream API timeout (5 s), and a failed one is followed by a constant `expires`
 * wait before it asks again, so the consumer pulled again 5-10 s after the election. Bound, it
 * pulls again whenever two heartbeats are missed: a pull sent while there is no leader is lost
 * (or answered 503 no responders, which nats.js counts as a heartbeat), so while the consumer
 * has no leader it pulls every 2-3 s, and the first pull after the election is served.
 *
 * Heartbeats every second (nats.js's default is expires / 2, so 5 s between pulls). An idle
 * heartbeat is a few bytes a second per consumer.
 *
 * What bind gives up, nats.js's own check that the consumer still exists, watchConsumer does.
 */
export const PULL = { expires: 5_000, idle_heartbeat: 1_000, bind: true } as const;

/** At most one warning and one check that the consumer still exists in this long. */
const CHECK_EVERY_MS = 30_000;

/**
 * Says in the log when the consumer is gone, which a bound consume does not check: deleted while
 * a pull waited (the server's 409), or not found when asked after heartbeats stopped (asked
 * aside, so the pulls sent meanwhile are not held up by the answer). The pulls go on: a
 * consumer created again (provisioning does) is served from its first pull.
 */
export async function watchConsumer(
  messages: ConsumerMessages,
  consumer: JsConsumer,
  where: { readonly stream: string; readonly durable: string },
  logger: Logger,
): Promise<void> {
  let checked = Number.NEGATIVE_INFINITY;
  for await (const s of messages.status()) {
    if (s.type === 'consumer_deleted') {
      logger.error(
        { ...where, code: s.code, description: s.description },
        `consumer ${where.durable} of stream ${where.stream} was deleted; nothing is delivered until it is created again`,
      );
    } else if (s.type === 'heartbeats_missed' && Date.now() - checked >= CHECK_EVERY_MS) {
      checked = Date.now();
      logger.warn({ ...where, missed: s.count }, 'consumer heartbeats missed; pulling again');
      void consumer.info().catch((err: unknown) => {
        if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.ConsumerNotFound)
          logger.error(
            where,
            `consumer ${where.durable} of stream ${where.stream} not found; nothing is delivered until it is created again`,
          );
        else logger.debug({ ...where, err: String(err) }, 'consumer info unanswered');
      });
    }
  }
}
