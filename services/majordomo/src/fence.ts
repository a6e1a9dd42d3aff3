import type { Bus, Logger } from '@computepods/bus';
import { isWrongLastSequence } from '@computepods/bus';
import { streams, subjects } from '@computepods/protocol';
import { type LeaderLease, NotLeaderError } from './lease.js';

type PubAck = Awaited<ReturnType<Bus['publish']>>;

/**
 * Fencing for build requests, enforced by the nats-server, not by a check before the write.
 *
 * Every build request a leader sends goes into the project's builds stream with JetStream's
 * `Nats-Expected-Last-Sequence`: the server stores it only if the stream's last sequence is the
 * one this leader last saw. Each new leader, right after it takes the lease and before it
 * dispatches anything, stores one fence message in that stream
 * (`cp.<p>.build.request._fence`, a name no chef can have, so no chef ever consumes it). From
 * then on the stream's last sequence is past anything an older leader saw, so every request a
 * stale leader sends — however long it was paused, whatever its own checks said — is refused
 * by the server ("wrong last sequence") and reaches no chef, hence no runner.
 *
 * When our own expectation is wrong for an innocent reason (a request another client put in
 * the stream, our own publish that timed out but was stored), the leader reads the stream's
 * last sequence FIRST and only then confirms in the lease KV that it still leads: a fence stored
 * before that read was stored after the takeover, which the lease read then shows; a fence
 * stored after it moves the last sequence past what was read. Either way a stale leader's
 * retry fails. (JetStream checks a message id's duplicate before the expected sequence, so a
 * request re-sent after a restart is still deduplicated.)
 *
 * Why not an epoch checked by the chefs: it needs every receiver to know the newest epoch
 * before the stale request reaches it, a read that races the takeover unless each receiver
 * reads the lease per request; the stream's sequence makes the server the single arbiter for
 * every receiver at once. Why the builds stream: it is the one place dispatches go (a work queue
 * whose consumed messages are deleted, which leaves its last sequence as it is).
 */
export class DispatchFence {
  #expected: number | undefined;
  readonly #stream: string;
  /** The publish before this one: fenced publishes go one after another (see publish). */
  #tail: Promise<unknown> = Promise.resolve();

  constructor(
    readonly bus: Bus,
    readonly lease: LeaderLease,
    readonly logger: Logger = bus.logger,
  ) {
    this.#stream = streams.builds(bus.project);
  }

  /** Stores this leader's fence: call once, after taking the lease, before any dispatch. */
  async raise(): Promise<void> {
    const subject = subjects.buildFence(this.bus.project);
    // Typed like an envelope, so the event stream (GET /api/events) names it, not 'message'.
    const body = JSON.stringify({
      type: 'leader.fence',
      holder: this.lease.id,
      epoch: this.lease.epoch,
      time: new Date().toISOString(),
    });
    const ack = await this.bus.js.publish(subject, body, {
      msgID: `fence.${this.lease.epoch}.${this.lease.id}`,
      timeout: 5_000,
    });
    this.#expected = ack.seq;
    // Older fences are history (this one alone stands); keeping one means the stream is never
    // emptied by it (2.9.10 can lose an empty stream's last sequence on a restart).
    await this.bus.jsm.streams
      .purge(this.#stream, { filter: subject, keep: 1 })
      .catch((err: Error) => this.logger.warn({ err: err.message }, 'old fences not purged'));
    this.logger.info(
      { epoch: this.lease.epoch, seq: ack.seq, stream: this.#stream },
      'fence stored: requests of earlier leaders are refused by the server from now on',
    );
  }

  /**
   * Publishes `data` (an encoded envelope) on `subject` in the builds stream only if no newer
   * leader has fenced it. Throws NotLeaderError when one has.
   *
   * One after another: each expects the sequence the one before left. Sent at once, all but
   * one of them expected the same sequence, failed, re-read the stream and the lease and tried
   * again, round after round (64 dispatches at once: some 2,000 round trips), and a request
   * still failing at the deadline made its leader step down with no newer leader at all.
   */
  publish(subject: string, data: string, msgID: string): Promise<PubAck> {
    const run = this.#tail.then(() => this.#publish(subject, data, msgID));
    this.#tail = run.catch(() => undefined);
    return run;
  }

  async #publish(subject: string, data: string, msgID: string): Promise<PubAck> {
    const deadline = performance.now() + 30_000;
    for (let delay = 100; ; delay = Math.min(delay * 2, 2_000)) {
      if (this.#expected === undefined) await this.#refresh();
      const expected = this.#expected as number;
      try {
        const ack = await this.bus.js.publish(subject, data, {
          msgID,
          expect: { lastSequence: expected },
          timeout: 5_000,
        });
        if (this.#expected !== undefined) this.#expected = Math.max(this.#expected, ack.seq);
        return ack;
      } catch (err) {
        if (isWrongLastSequence(err)) {
          // Fenced, or an innocent mismatch: #refresh tells which (throws if fenced).
          this.#expected = undefined;
          if (performance.now() > deadline) throw err;
          continue;
        }
        if (performance.now() + delay > deadline || !transient(err)) throw err;
        this.logger.warn(
          { subject, err: (err as Error).message, retryInMs: delay },
          'fenced publish not acknowledged; retrying',
        );
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  async #refresh(): Promise<void> {
    // The stream's last sequence first, then the lease (see the class comment for why).
    const info = await this.bus.jsm.streams.info(this.#stream);
    const leader = await this.lease.current();
    if (leader?.holder !== this.lease.id || leader.epoch !== this.lease.epoch) {
      this.lease.markLost(leader);
      throw new NotLeaderError(this.lease.id, this.lease.epoch, leader);
    }
    this.#expected = info.state.last_seq;
  }
}

function transient(err: unknown): boolean {
  const e = err as { code?: string; name?: string; message?: string };
  const text = `${e.name ?? ''} ${e.code ?? ''} ${e.message ?? ''}`.toLowerCase();
  return /timeout|503|no responders|disconnect|closed|reconnect|connection/.test(text);
}
