import type { SFTPWrapper } from 'ssh2';
import { channelError } from './classify.js';
import { TransportError } from './errors.js';
import { type ExecOptions, type ExecResult, execOnClient } from './exec.js';
import { HostPool } from './host-pool.js';
import { silentLogger, type TransportLogger } from './logger.js';
import { OpenThrottle } from './open-throttle.js';
import { type PoolSettings, resolveSettings, type SshPoolOptions } from './settings.js';
import { shellJoin } from './shell-quote.js';
import { emptyStats, type SshPoolStats } from './stats.js';
import { endpointOf, type SshTarget, targetKey } from './target.js';

/**
 * One SSH connection pool for the process: an actor per target reuses connections, keeps
 * them alive, rotates them before maxConnectionAgeMs, spaces opens per host, and bounds
 * channels per connection (requests beyond wait their turn).
 */
export class SshPool {
  readonly #settings: PoolSettings;
  readonly #log: TransportLogger;
  readonly #throttle: OpenThrottle;
  readonly #hosts = new Map<string, HostPool>();
  #closed = false;

  constructor(options: SshPoolOptions = {}) {
    this.#settings = resolveSettings(options);
    this.#log = options.logger ?? silentLogger;
    this.#throttle = new OpenThrottle(this.#settings.minOpenIntervalMs);
  }

  #host(target: SshTarget): HostPool {
    if (this.#closed) {
      throw new TransportError(
        'TRANSPORT_POOL_CLOSED',
        `${endpointOf(target)}: the SSH pool is closed; create a new SshPool`,
      );
    }
    const key = targetKey(target);
    let host = this.#hosts.get(key);
    if (!host) {
      host = new HostPool(target, this.#settings, this.#throttle, this.#log);
      this.#hosts.set(key, host);
    }
    return host;
  }

  /**
   * Runs a command. A string goes to the remote shell as it is (quote with shellQuote); an
   * array is quoted argument by argument, so every element arrives literally.
   * A non-zero exit is a result, not an error; errors are TransportErrors.
   */
  async exec(
    target: SshTarget,
    command: string | readonly string[],
    options: ExecOptions = {},
  ): Promise<ExecResult> {
    const line = typeof command === 'string' ? command : shellJoin(command);
    const endpoint = endpointOf(target);
    return this.#host(target).withConnection((client, hold) =>
      execOnClient(client, line, options, endpoint, hold),
    );
  }

  /** Runs fn with an SFTP session on a pooled connection; the session ends when fn settles. */
  async sftp<T>(target: SshTarget, fn: (sftp: SFTPWrapper) => Promise<T>): Promise<T> {
    const endpoint = endpointOf(target);
    let started = false;
    return this.#host(target).withConnection(
      async (client, hold) => {
        const sftp = await new Promise<SFTPWrapper>((resolve, reject) => {
          try {
            client.sftp((err, s) => (err ? reject(channelError(err, endpoint)) : resolve(s)));
          } catch (err) {
            reject(channelError(err, endpoint));
          }
        });
        started = true;
        const closed = new Promise<void>((resolve) => {
          sftp.once('close', () => resolve());
          sftp.on('error', () => undefined);
        });
        // The slot is free only once the server has closed the session too.
        hold(Promise.race([closed, new Promise<void>((r) => setTimeout(r, 5_000).unref())]));
        // A session cut off mid-operation (connection dropped, server gone) can leave ssh2's
        // fastPut/fastGet waiting forever: the session closing first fails the operation.
        let settled = false;
        const cut = closed.then(() => {
          if (settled) return undefined as never;
          throw new TransportError(
            'TRANSPORT_CONNECTION_LOST',
            `${endpoint}: the SFTP session closed mid-operation (connection lost); the operation may have partly happened`,
            { retryable: true, endpoint },
          );
        });
        try {
          return await Promise.race([fn(sftp), cut]);
        } finally {
          settled = true;
          sftp.end();
        }
      },
      () => !started,
    );
  }

  /** Totals over every target, or one target's figures. */
  stats(target?: SshTarget): SshPoolStats {
    if (target) return { ...(this.#hosts.get(targetKey(target))?.stats ?? emptyStats()) };
    const total = emptyStats();
    for (const h of this.#hosts.values()) {
      for (const k of Object.keys(total) as (keyof SshPoolStats)[]) {
        total[k] =
          k === 'peakChannelsPerConnection' || k === 'peakQueued'
            ? Math.max(total[k], h.stats[k])
            : total[k] + h.stats[k];
      }
    }
    return total;
  }

  /** Closes every connection; pending requests fail with TRANSPORT_POOL_CLOSED. */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all([...this.#hosts.values()].map((h) => h.close()));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
