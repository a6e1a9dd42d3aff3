import type { Socket } from 'node:net';
import {
  type ConnectionOptions,
  type NatsConnection,
  NatsConnectionImpl,
  setTransportFactory,
} from '@nats-io/transport-node';
// Not re-exported by the package's index; the package has no exports map, so its files are
// importable by path. Pinned by the catalog (3.4.x): bus.test checks the batching still holds.
import { NodeTransport, nodeResolveHost } from '@nats-io/transport-node/lib/node_transport.js';

/**
 * nats.js's node transport, with at most one socket write per event-loop turn.
 *
 * nats.js gathers outbound commands and hands them to the transport once per microtask batch
 * (protocol.js `sendCommand` → `queueMicrotask(flushPending)`), and the node transport writes
 * each one to the socket at once: a write(2) each. A service that reacts to several messages,
 * replies and child-process events in one turn of the event loop (a runner: a KV write, an
 * event and an ack per task state) made about 4 writes per task, a quarter of its CPU.
 *
 * Here the first frame of a turn corks the socket and a `setImmediate` uncorks it, so every
 * frame of the turn leaves in one writev(2): the check phase of the same turn. Nothing waits
 * longer than that; libuv does not block in poll while an immediate is pending. A close or
 * disconnect uncorks first, so what was handed over before it is still written, as before.
 */
class TurnBatchedTransport extends NodeTransport {
  #corked: Socket | undefined;

  readonly #uncork = (): void => {
    const socket = this.#corked;
    this.#corked = undefined;
    socket?.uncork();
  };

  override send(frame: Uint8Array): void {
    const socket = this.socket as Socket | undefined;
    if (socket && !this.#corked && !socket.destroyed && !this.isClosed) {
      socket.cork();
      this.#corked = socket;
      setImmediate(this.#uncork);
    }
    super.send(frame);
  }

  override close(err?: Error): Promise<void> {
    this.#uncork();
    return super.close(err);
  }

  override disconnect(): void {
    this.#uncork();
    super.disconnect();
  }

  override discard(): void {
    this.#uncork();
    super.discard();
  }
}

/**
 * `connect` from @nats-io/transport-node, with the turn-batched transport. The factory is
 * process-wide in nats.js (transport-node's own `connect` sets it on every call): it is set
 * again here on each connect, and a reconnect uses whichever was set last, both correct.
 */
export function connectTurnBatched(options: ConnectionOptions): Promise<NatsConnection> {
  setTransportFactory({
    factory: () => new TurnBatchedTransport(),
    dnsResolveFn: nodeResolveHost,
  });
  return NatsConnectionImpl.connect(options);
}
