/** Counters since the pool was created, plus current gauges. */
export interface SshPoolStats {
  /** Connections that completed authentication. */
  connectionsOpened: number;
  connectionsClosed: number;
  /** Failed connect attempts, retried ones included. */
  connectFailures: number;
  /** Opens that had to wait for minOpenIntervalMs. */
  throttledOpens: number;
  /** Channels opened (exec and sftp). */
  channelsOpened: number;
  /**
   * Channel opens the server refused and that were tried again (the command never started).
   * OpenSSH frees a session slot a moment after the channel closes, so at exactly
   * MaxSessions channels a quick reopen can be refused.
   */
  channelRetries: number;
  /** Channels served by a connection that had served one before. */
  reused: number;
  /** Connections retired for age. */
  rotations: number;
  /** Connections closed for idleness. */
  idleClosed: number;
  /** Channel requests that had to wait for a free slot. */
  queuedRequests: number;
  /** Most channels ever open at once on one connection. */
  peakChannelsPerConnection: number;
  /** Most channel requests ever waiting at once for one target. */
  peakQueued: number;
  activeConnections: number;
  activeChannels: number;
  queued: number;
}

export function emptyStats(): SshPoolStats {
  return {
    connectionsOpened: 0,
    connectionsClosed: 0,
    connectFailures: 0,
    throttledOpens: 0,
    channelsOpened: 0,
    channelRetries: 0,
    reused: 0,
    rotations: 0,
    idleClosed: 0,
    queuedRequests: 0,
    peakChannelsPerConnection: 0,
    peakQueued: 0,
    activeConnections: 0,
    activeChannels: 0,
    queued: 0,
  };
}
