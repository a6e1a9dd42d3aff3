import { performance } from 'node:perf_hooks';
import { type Bus, isWrongLastSequence, type Logger, type TypedKv } from '@computepods/bus';
import { buckets, CpError } from '@computepods/protocol';
import { z } from 'zod';

/**
 * The leadership of a project's MajorDomos (CP_MAJORDOMO_HA=1): one record, key `lease` in KV
 * `cp_<p>_leader`, written only with compare-and-set (create, or update at the revision read).
 *
 * - The leader renews it every `renewMs` (an update at its last revision). It counts itself
 *   leader until `leaseMs - renewMs` after it SENT its last renewal that succeeded, on its own
 *   monotonic clock; past that it dispatches nothing until a renewal succeeds again (`ensure`).
 * - A standby reads the record every `pollMs`. Once the revision it sees has not changed for
 *   `leaseMs` on ITS monotonic clock (from when it first saw it, which is after the leader sent
 *   it), the lease has expired: it takes it with an update at that revision, epoch + 1. No wall
 *   clocks are compared, so clock skew between machines does not matter; the leader's own window
 *   ends `renewMs` before any standby may take over.
 * - Two standbys racing for one expired lease: the server takes one update and refuses the
 *   other (wrong last sequence).
 * - A paused leader (SIGSTOP, a VM freeze, a GC pause) wakes up past its window: its next renewal
 *   fails if the lease was taken, and it steps down. What it might send in between is refused by
 *   the server: see DispatchFence (fence.ts).
 */
export const LeaderRecord = z.object({
  /** The holder's id (CP_MAJORDOMO_ID; default host name and pid). */
  holder: z.string().min(1).max(200),
  /** Bumped by every takeover: build requests carry it (BuildRequested.leader). */
  epoch: z.number().int().positive(),
  /** The leader's REST address once it listens: a standby's 503 names it. */
  url: z.string().max(500).optional(),
  /** When the holder wrote it (informational only: expiry is judged by revisions). */
  time: z.string().max(40),
  /** Written by a leader that stopped cleanly: a standby takes over at once. */
  released: z.boolean().optional(),
});
export type LeaderRecord = z.infer<typeof LeaderRecord>;

export const LEASE_KEY = 'lease';

export interface LeaseConfig {
  /** CP_MAJORDOMO_HA: run as leader or standby of the project (off: alone, as before). */
  readonly enabled: boolean;
  /** CP_MAJORDOMO_ID: unique per process; default `<hostname>-<pid>`. */
  readonly id: string;
  /** CP_LEASE_MS (3000): a leader unheard of this long is replaced. */
  readonly leaseMs: number;
  /** CP_LEASE_RENEW_MS (1000): how often the leader renews; at most half the lease. */
  readonly renewMs: number;
  /** How often a standby looks at the lease: a quarter of the renewal interval. */
  readonly pollMs: number;
}

/** This MajorDomo is not (or no longer) its project's leader. Retryable: the leader does it. */
export class NotLeaderError extends CpError {
  constructor(
    readonly id: string,
    readonly epoch: number,
    readonly leader: LeaderRecord | undefined,
    options?: ErrorOptions,
  ) {
    super(
      'CP_NOT_LEADER',
      `MajorDomo ${id} (epoch ${epoch}) is no longer the leader${
        leader ? `: ${leader.holder} holds epoch ${leader.epoch}` : ''
      }; it dispatches nothing and steps down`,
      { ...options, retryable: true },
    );
  }
}

const now = () => performance.now();

/** One MajorDomo's side of the lease: wait to lead, renew, notice a loss. */
export class LeaderLease {
  #revision = 0;
  #record: LeaderRecord | undefined;
  /** The REST address written with every renewal once known (setUrl). */
  #url: string | undefined;
  /** Monotonic time until which this process counts itself leader. */
  #validUntil = Number.NEGATIVE_INFINITY;
  #lost: LeaderRecord | undefined | null = null;
  #timer: NodeJS.Timeout | undefined;
  #renewing: Promise<boolean> | undefined;
  /** Set by stop(): a renewal in flight then schedules no next one. */
  #stopped = false;
  readonly #onLost: Array<(by: LeaderRecord | undefined) => void> = [];
  readonly #onRegained: Array<() => void> = [];

  private constructor(
    readonly kv: TypedKv<typeof LeaderRecord>,
    readonly cfg: LeaseConfig,
    readonly logger: Logger,
  ) {}

  static async open(bus: Bus, cfg: LeaseConfig): Promise<LeaderLease> {
    const kv = await bus.kv(buckets.leader(bus.project), LeaderRecord, { history: 1 });
    return new LeaderLease(kv, cfg, bus.logger);
  }

  get id(): string {
    return this.cfg.id;
  }

  /** The epoch this process leads with (0 before it leads). */
  get epoch(): number {
    return this.#record?.epoch ?? 0;
  }

  /** The lease as last read or written. */
  async current(): Promise<LeaderRecord | undefined> {
    return (await this.kv.get(LEASE_KEY))?.value;
  }

  /**
   * Waits until this process holds the lease, then renews it in the background. `waiting` is
   * told of each leader seen while standing by.
   */
  async acquire(
    signal: AbortSignal,
    waiting: (leader: LeaderRecord) => void = () => undefined,
  ): Promise<LeaderRecord> {
    let seen: { revision: number; since: number } | undefined;
    while (!signal.aborted) {
      const started = now();
      const cur = await this.kv.get(LEASE_KEY).catch((err: Error) => {
        this.logger.warn({ err: err.message }, 'cannot read the leader lease; trying again');
        return null;
      });
      if (cur !== null) {
        if (!cur) {
          if (await this.#take(undefined, 0, started)) return this.#record as LeaderRecord;
        } else {
          if (seen?.revision !== cur.revision) {
            // From when the answer came: the leader sent that revision before then, whatever
            // the round trip took (the time the question left could be earlier than its write).
            seen = { revision: cur.revision, since: now() };
            waiting(cur.value);
          }
          // Its own record (CP_MAJORDOMO_ID kept across a restart): that process is gone.
          const expired =
            cur.value.holder === this.id ||
            cur.value.released === true ||
            now() - seen.since >= this.cfg.leaseMs;
          if (expired && (await this.#take(cur.value, cur.revision, started)))
            return this.#record as LeaderRecord;
        }
      }
      await new Promise((r) => setTimeout(r, this.cfg.pollMs));
    }
    // Only a stop ends the wait (startService's signal): the start is abandoned with its reason.
    throw signal.reason;
  }

  async #take(old: LeaderRecord | undefined, revision: number, sentAt: number): Promise<boolean> {
    const record: LeaderRecord = {
      holder: this.id,
      epoch: (old?.epoch ?? 0) + 1,
      time: new Date().toISOString(),
    };
    try {
      this.#revision = old
        ? await this.kv.update(LEASE_KEY, record, revision)
        : await this.kv.create(LEASE_KEY, record);
    } catch (err) {
      // Another standby took it first (or the leader renewed just now): stand by again.
      this.logger.info(
        { err: (err as Error).message, wrongRevision: isWrongLastSequence(err) },
        'lease not taken; standing by',
      );
      return false;
    }
    this.#record = record;
    this.#validUntil = sentAt + this.cfg.leaseMs - this.cfg.renewMs;
    this.logger.info(
      { id: this.id, epoch: record.epoch, previous: old?.holder, leaseMs: this.cfg.leaseMs },
      old
        ? `took the lease from ${old.holder}: leading with epoch ${record.epoch}`
        : `leading with epoch ${record.epoch}`,
    );
    this.#schedule();
    return true;
  }

  #schedule(): void {
    if (this.#lost !== null || this.#stopped) return;
    this.#timer = setTimeout(() => void this.renew(), this.cfg.renewMs);
    this.#timer.unref();
  }

  /** Whether this process may act as leader now, on its own clock alone (no round trip). */
  held(): boolean {
    return this.#lost === null && this.#record !== undefined && now() < this.#validUntil;
  }

  /**
   * Whether this process leads: at once when its window is open, else after a renewal (a
   * process that was paused, or could not reach NATS for a while). False once lost, for good.
   */
  async ensure(): Promise<boolean> {
    if (this.held()) return true;
    if (this.#lost !== null || !this.#record) return false;
    return this.renew();
  }

  /**
   * Sets this leader's REST address and writes it with a renewal now (after any in flight), not
   * at the next one: a standby names the address to clients from the lease, and one that read the
   * lease in between answered with no address for up to a renewal interval (fresh-clone CI run
   * 145, standby.test.ts). False if the lease is lost.
   */
  async setUrl(url: string): Promise<boolean> {
    this.#url = url;
    await this.#renewing;
    return this.renew();
  }

  /** Called when a renewal reopens a window that had closed (the lease was still this one's). */
  onRegained(fn: () => void): void {
    this.#onRegained.push(fn);
  }

  /** Called once if the lease is lost (taken by another, or deleted). */
  onLost(fn: (by: LeaderRecord | undefined) => void): void {
    this.#onLost.push(fn);
  }

  /** Renews now (one at a time); false if the lease is lost. */
  renew(): Promise<boolean> {
    this.#renewing ??= this.#renew().finally(() => {
      this.#renewing = undefined;
    });
    return this.#renewing;
  }

  async #renew(): Promise<boolean> {
    if (this.#lost !== null || !this.#record) return false;
    clearTimeout(this.#timer);
    const sentAt = now();
    const record: LeaderRecord = {
      ...this.#record,
      ...(this.#url ? { url: this.#url } : {}),
      time: new Date().toISOString(),
    };
    const lapsed = !this.held();
    try {
      this.#revision = await this.kv.update(LEASE_KEY, record, this.#revision);
      this.#record = record;
      this.#validUntil = sentAt + this.cfg.leaseMs - this.cfg.renewMs;
      this.#schedule();
      // Work held back while the window was closed (NATS away) goes on now, not at the next event.
      if (lapsed) for (const fn of this.#onRegained) fn();
      return true;
    } catch (err) {
      if (!isWrongLastSequence(err)) {
        // NATS away: no renewal, so the window closes by itself; tried again next interval.
        this.logger.warn(
          { err: (err as Error).message, heldForMs: Math.round(this.#validUntil - now()) },
          'lease not renewed; trying again',
        );
        this.#schedule();
        return this.held();
      }
      const by = await this.current().catch(() => undefined);
      this.markLost(by);
      return false;
    }
  }

  /** The lease is another's (seen by a renewal, or by the fence): step down, once. */
  markLost(by: LeaderRecord | undefined): void {
    if (this.#lost !== null) return;
    this.#lost = by;
    clearTimeout(this.#timer);
    for (const fn of this.#onLost) fn(by);
  }

  /** Who took it, once lost; null while held. */
  get lostTo(): LeaderRecord | undefined | null {
    return this.#lost;
  }

  /**
   * Stops renewing, also when a renewal is in flight (it schedules no next one); a clean stop
   * deletes nothing: the lease runs out and a standby takes it.
   */
  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
  }

  /**
   * A clean stop hands over at once: the lease is marked released if still this process's. A
   * renewal in flight is waited for first, so the release is written at the revision it left.
   */
  async release(): Promise<void> {
    this.stop();
    await this.#renewing;
    if (this.#lost !== null || !this.#record) return;
    this.#lost = undefined;
    const record = { ...this.#record, released: true, time: new Date().toISOString() };
    await this.kv.update(LEASE_KEY, record, this.#revision).catch(() => undefined);
  }
}
