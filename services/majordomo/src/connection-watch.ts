import type { Bus } from '@computepods/bus';

/** Whether this MajorDomo's NATS connection is up, followed from its status events. */
export interface ConnectionWatch {
  readonly connected: boolean;
  stop(): void;
}

/**
 * Follows the connection for a liveness check: while it is away nothing can be heard, so
 * silence proves nothing, and `onReconnect` gives everyone followed a full grace again.
 */
export function watchConnection(bus: Bus, onReconnect: () => void): ConnectionWatch {
  let connected = true;
  let stopped = false;
  void (async () => {
    for await (const st of bus.nc.status()) {
      if (stopped) break;
      if (st.type === 'disconnect') connected = false;
      else if (st.type === 'reconnect') {
        connected = true;
        onReconnect();
      }
    }
  })().catch(() => undefined);
  return {
    get connected() {
      return connected;
    },
    stop() {
      stopped = true;
    },
  };
}
