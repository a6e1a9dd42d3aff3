import { setTimeout as sleep } from 'node:timers/promises';
import { isRetryable } from '@computepods/protocol';
import type { Client } from 'ssh2';
import { openClient } from './connect.js';
import { TransportError } from './errors.js';
import type { TransportLogger } from './logger.js';
import type { OpenThrottle } from './open-throttle.js';
import type { PoolSettings } from './settings.js';
import { emptyStats, type SshPoolStats } from './stats.js';
import { endpointOf, type SshTarget } from './target.js';

interface Connection {
  readonly id: number;
  readonly client: Client;
  readonly openedAt: number;
  lastUsedAt: number;
  channels: number;
  served: number;
  /** Past its age: takes no new channels, closes once its channels are done. */
  draining: boolean;
  /** The server refused a channel: take no new one until one of ours has closed. */
  refused: boolean;
  settling: boolean;
  closed: boolean;
}

interface Waiter {
  resolve(conn: Connection): void;
  reject(err: Error): void;
}

let nextConnectionId = 1;

// Refused channel opens retried before giving up; the command had not started, so it is safe.
const CHANNEL_ATTEMPTS = 20;
// How long after one of our channels closes before a refused connection is tried again.
const SETTLE_MS = 5;

/**
 * The pool actor for one target. All state changes happen in #pump, #release and the
 * connection event handlers, never across an await, so no lock is needed: Node runs one of
 * them at a time. Waiters are served in arrival order.
 */
export class HostPool {
  readonly stats: SshPoolStats = emptyStats();
  readonly #target: SshTarget;
  readonly #endpoint: string;
  readonly #s: PoolSettings;
  readonly #throttle: OpenThrottle;
  readonly #log: TransportLogger;
  readonly #conns: Connection[] = [];
  readonly #waiters: Waiter[] = [];
  #opening = 0;
  #closed = false;
  #sweeper: NodeJS.Timeout | undefined;

  constructor(target: SshTarget, s: PoolSettings, throttle: OpenThrottle, log: TransportLogger) {
    this.#target = target;
    this.#endpoint = endpointOf(target);
    this.#s = s;
    this.#throttle = throttle;
    this.#log = log;
  }

  /**
   * Runs fn with a connection holding one reserved channel slot. The slot is freed when fn
   * has settled and every promise passed to hold() has too: a timed-out command answers its
   * caller at once, but its channel counts against the server's MaxSessions until it closes.
   *
   * When the server refuses the channel and notStarted() says the caller's work has not
   * begun, the request goes back to the head of the queue and that connection takes no new
   * channel until one of its channels closes: OpenSSH frees a session slot only after it has
   * processed our close, so at exactly MaxSessions a reopen can race ahead and be refused.
   */
  async withConnection<T>(
    fn: (client: Client, hold: (closed: Promise<void>) => void) => Promise<T>,
    notStarted: () => boolean = () => true,
  ): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const conn = await this.#acquire(attempt > 1);
      const held: Promise<void>[] = [];
      let refused = false;
      try {
        return await fn(conn.client, (p) => held.push(p));
      } catch (err) {
        // A channel that never opened ran nothing: try again, on a new connection when this
        // one died meanwhile (the server dropped it while the open was under way).
        const retry =
          err instanceof TransportError &&
          err.code === 'TRANSPORT_CHANNEL_FAILED' &&
          notStarted() &&
          attempt < CHANNEL_ATTEMPTS;
        if (!retry) throw err;
        refused = !conn.closed;
        this.stats.channelRetries++;
        this.#log.debug(
          { endpoint: this.#endpoint, id: conn.id, attempt, lost: conn.closed },
          refused ? 'channel refused' : 'connection lost while opening a channel',
        );
      } finally {
        if (held.length === 0) this.#release(conn, refused);
        else void Promise.all(held).finally(() => this.#release(conn));
      }
    }
  }

  #acquire(urgent = false): Promise<Connection> {
    if (this.#closed) {
      return Promise.reject(
        new TransportError('TRANSPORT_POOL_CLOSED', `${this.#endpoint}: the SSH pool is closed`, {
          endpoint: this.#endpoint,
        }),
      );
    }
    return new Promise((resolve, reject) => {
      if (urgent) this.#waiters.unshift({ resolve, reject });
      else this.#waiters.push({ resolve, reject });
      this.#pump();
      if (this.#waiters.length > 0) {
        this.stats.queuedRequests++;
        this.stats.peakQueued = Math.max(this.stats.peakQueued, this.#waiters.length);
      }
      this.#gauge();
    });
  }

  #release(conn: Connection, refusedHere = false): void {
    conn.channels--;
    conn.lastUsedAt = Date.now();
    if (refusedHere) {
      conn.refused = true;
      // With none of ours left open, the server is still reaping one we closed just now.
      if (conn.channels === 0) this.#settle(conn);
    } else if (conn.refused) this.#settle(conn);
    if (conn.draining && conn.channels === 0) this.#retire(conn, 'rotated');
    this.#pump();
  }

  /** Lets a refused connection take channels again once the server has had a moment. */
  #settle(conn: Connection): void {
    if (conn.settling) return;
    conn.settling = true;
    setTimeout(() => {
      conn.settling = false;
      conn.refused = false;
      this.#pump();
    }, SETTLE_MS).unref();
  }

  #pump(): void {
    const now = Date.now();
    for (const c of [...this.#conns]) {
      if (!c.draining && now - c.openedAt >= this.#s.maxConnectionAgeMs) {
        c.draining = true;
        this.stats.rotations++;
        this.#log.debug({ endpoint: this.#endpoint, id: c.id }, 'ssh connection past max age');
        if (c.channels === 0) this.#retire(c, 'rotated');
      }
    }
    while (this.#waiters.length > 0) {
      let best: Connection | undefined;
      for (const c of this.#conns) {
        if (c.draining || c.closed || c.refused) continue;
        if (c.channels >= this.#s.channelsPerConnection) continue;
        if (!best || c.channels < best.channels) best = c;
      }
      const waiter = best && this.#waiters.shift();
      if (!best || !waiter) break;
      best.channels++;
      if (best.served++ > 0) this.stats.reused++;
      this.stats.channelsOpened++;
      this.stats.peakChannelsPerConnection = Math.max(
        this.stats.peakChannelsPerConnection,
        best.channels,
      );
      waiter.resolve(best);
    }
    // Draining connections do not count: they take nothing new and close soon.
    const live = this.#conns.filter((c) => !c.draining && !c.closed).length;
    const coming = this.#opening * this.#s.channelsPerConnection;
    if (
      this.#waiters.length > coming &&
      live + this.#opening < this.#s.maxConnectionsPerHost &&
      !this.#closed
    ) {
      void this.#open();
    }
    this.#gauge();
  }

  async #open(): Promise<void> {
    this.#opening++;
    let client: Client | undefined;
    let lastError: TransportError | undefined;
    const attempts = 1 + this.#s.connectRetries;
    for (let attempt = 1; attempt <= attempts && !this.#closed; attempt++) {
      if (await this.#throttle.wait(this.#target.host)) this.stats.throttledOpens++;
      try {
        client = await openClient(this.#target, this.#s);
        break;
      } catch (err) {
        lastError = err as TransportError;
        this.stats.connectFailures++;
        this.#log.warn(
          { endpoint: this.#endpoint, attempt, code: lastError.code, err: lastError.message },
          'ssh connect failed',
        );
        if (!isRetryable(lastError) || attempt === attempts) break;
        const backoff = Math.min(this.#s.retryMaxMs, this.#s.retryBaseMs * 2 ** (attempt - 1));
        await sleep(backoff / 2 + (Math.random() * backoff) / 2);
      }
    }
    this.#opening--;
    if (!client) {
      this.#failWaiters(lastError, attempts);
      this.#pump();
      return;
    }
    if (this.#closed) {
      // Nobody follows this client: its goodbye to a server already gone (EPIPE) would be an
      // 'error' event without a listener, an uncaught exception that ends the process.
      client.on('error', (err: Error) =>
        this.#log.debug({ endpoint: this.#endpoint, err: err.message }, 'ssh error after close'),
      );
      client.end();
      return;
    }
    this.#adopt(client);
  }

  #failWaiters(lastError: TransportError | undefined, attempts: number): void {
    // Others may still serve the waiters; fail them only when nothing else can.
    const live = this.#conns.some((c) => !c.closed && !c.draining);
    if (live || this.#opening > 0) return;
    const err =
      lastError && attempts > 1 && isRetryable(lastError)
        ? new TransportError(
            lastError.code,
            `${lastError.message} (gave up after ${attempts} attempts)`,
            { cause: lastError, retryable: true, endpoint: this.#endpoint },
          )
        : (lastError ??
          new TransportError('TRANSPORT_POOL_CLOSED', `${this.#endpoint}: the SSH pool is closed`));
    for (const w of this.#waiters.splice(0)) w.reject(err);
  }

  #adopt(client: Client): void {
    const now = Date.now();
    const conn: Connection = {
      id: nextConnectionId++,
      client,
      openedAt: now,
      lastUsedAt: now,
      channels: 0,
      served: 0,
      draining: false,
      refused: false,
      settling: false,
      closed: false,
    };
    this.#conns.push(conn);
    this.stats.connectionsOpened++;
    this.#log.debug({ endpoint: this.#endpoint, id: conn.id }, 'ssh connection open');
    const gone = () => this.#forget(conn);
    client.on('close', gone);
    client.on('end', gone);
    client.on('error', (err: Error) => {
      this.#log.warn({ endpoint: this.#endpoint, id: conn.id, err: err.message }, 'ssh error');
      gone();
    });
    this.#startSweeper();
    this.#pump();
  }

  /** The connection is gone (closed by us, the server, or the network). */
  #forget(conn: Connection, pump = true): void {
    if (conn.closed) return;
    conn.closed = true;
    const i = this.#conns.indexOf(conn);
    if (i >= 0) this.#conns.splice(i, 1);
    this.stats.connectionsClosed++;
    if (this.#conns.length === 0) this.#stopSweeper();
    if (pump) this.#pump();
  }

  #retire(conn: Connection, why: 'idle' | 'rotated'): void {
    if (conn.closed) return;
    if (why === 'idle') this.stats.idleClosed++;
    this.#log.debug({ endpoint: this.#endpoint, id: conn.id, why }, 'ssh connection retired');
    conn.client.end();
    this.#forget(conn, false);
  }

  #startSweeper(): void {
    if (this.#sweeper) return;
    const every = Math.max(
      50,
      Math.min(30_000, Math.min(this.#s.maxIdleMs, this.#s.maxConnectionAgeMs) / 2),
    );
    this.#sweeper = setInterval(() => this.#sweep(), every);
    this.#sweeper.unref();
  }

  #stopSweeper(): void {
    if (this.#sweeper) clearInterval(this.#sweeper);
    this.#sweeper = undefined;
  }

  #sweep(): void {
    const now = Date.now();
    for (const c of [...this.#conns]) {
      if (c.channels === 0 && now - c.lastUsedAt >= this.#s.maxIdleMs) this.#retire(c, 'idle');
    }
    this.#pump();
  }

  #gauge(): void {
    this.stats.activeConnections = this.#conns.length;
    this.stats.activeChannels = this.#conns.reduce((n, c) => n + c.channels, 0);
    this.stats.queued = this.#waiters.length;
  }

  /** Refuses new work, fails waiters, and closes every connection. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#stopSweeper();
    const err = new TransportError(
      'TRANSPORT_POOL_CLOSED',
      `${this.#endpoint}: the SSH pool was closed while this request waited`,
      { endpoint: this.#endpoint },
    );
    for (const w of this.#waiters.splice(0)) w.reject(err);
    const closing = this.#conns.map(
      (c) =>
        new Promise<void>((resolve) => {
          if (c.closed) return resolve();
          const t = setTimeout(() => {
            c.client.destroy();
            resolve();
          }, 2_000);
          c.client.once('close', () => {
            clearTimeout(t);
            resolve();
          });
          c.client.end();
        }),
    );
    await Promise.all(closing);
    for (const c of [...this.#conns]) this.#forget(c, false);
    this.#gauge();
  }
}
