/** How long the ack of a task taken from a lane wait may wait for others (ms). */
export const ACK_BATCH_MS = 10;

/**
 * Acks that leave together. A runner whose tasks wait for lanes holds as many unacknowledged
 * messages as JetStream lets it (the consumer's max_ack_pending): each ack lets the server
 * deliver one more, so acks sent one by one, as lanes free, bring the queue's messages one by
 * one too, a socket write and a wakeup on each side a task. Acks that wait for the same turn
 * (at most ACK_BATCH_MS) leave in one write and bring the next messages in a batch. Safe: a task
 * is acked once its running record is written, and a redelivery of a task with a record is
 * acked without running it again; the wait only delays the next deliveries, while the runner
 * still holds the others.
 */
export class AckBatch {
  readonly #ms: number;
  #turn: Promise<void> | undefined;

  constructor(ms = ACK_BATCH_MS) {
    this.#ms = ms;
  }

  /** Resolves at the next turn: every caller meanwhile resumes in the same tick. */
  turn(): Promise<void> {
    this.#turn ??= new Promise<void>((resolve) =>
      setTimeout(() => {
        this.#turn = undefined;
        resolve();
      }, this.#ms),
    );
    return this.#turn;
  }
}
