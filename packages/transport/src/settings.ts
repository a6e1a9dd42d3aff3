import type { TransportLogger } from './logger.js';

export interface SshPoolOptions {
  /** Connections per target (host, port, user, key). Default 2. */
  readonly maxConnectionsPerHost?: number;
  /** Channels (exec, sftp) per connection; OpenSSH's MaxSessions default is 10. Default 10. */
  readonly channelsPerConnection?: number;
  /** AiiDA's safe_interval: least time between two connection opens to one host. Default 500. */
  readonly minOpenIntervalMs?: number;
  /** A connection older than this takes no new channels and closes when idle. Default 10 min. */
  readonly maxConnectionAgeMs?: number;
  /** Close a connection idle this long; set it below the server's idle timeout. Default 60 s. */
  readonly maxIdleMs?: number;
  /** SSH-level keepalive interval (0 disables). Default 15 s. */
  readonly keepaliveMs?: number;
  /** Unanswered keepalives before the connection counts as dead. Default 3. */
  readonly keepaliveCountMax?: number;
  /** Bound on TCP connect + handshake + auth. Default 10 s. */
  readonly connectTimeoutMs?: number;
  /** Extra attempts after a retryable connect failure. Default 3. */
  readonly connectRetries?: number;
  /** First backoff delay; doubles each attempt, with jitter, up to retryMaxMs. Default 250. */
  readonly retryBaseMs?: number;
  readonly retryMaxMs?: number;
  readonly logger?: TransportLogger;
}

export type PoolSettings = Required<Omit<SshPoolOptions, 'logger'>>;

export function resolveSettings(o: SshPoolOptions): PoolSettings {
  const s: PoolSettings = {
    maxConnectionsPerHost: o.maxConnectionsPerHost ?? 2,
    channelsPerConnection: o.channelsPerConnection ?? 10,
    minOpenIntervalMs: o.minOpenIntervalMs ?? 500,
    maxConnectionAgeMs: o.maxConnectionAgeMs ?? 10 * 60_000,
    maxIdleMs: o.maxIdleMs ?? 60_000,
    keepaliveMs: o.keepaliveMs ?? 15_000,
    keepaliveCountMax: o.keepaliveCountMax ?? 3,
    connectTimeoutMs: o.connectTimeoutMs ?? 10_000,
    connectRetries: o.connectRetries ?? 3,
    retryBaseMs: o.retryBaseMs ?? 250,
    retryMaxMs: o.retryMaxMs ?? 5_000,
  };
  if (s.maxConnectionsPerHost < 1) throw new RangeError('maxConnectionsPerHost must be >= 1');
  if (s.channelsPerConnection < 1) throw new RangeError('channelsPerConnection must be >= 1');
  return s;
}
