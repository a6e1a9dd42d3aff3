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
  /** What waits for the next turn that writes (withNextWrite); the earliest of their deadlines. */
  #riders: Array<() => void> = [];
  #riderTimer: NodeJS.Timeout | undefined;
  #riderDue = Number.POSITIVE_INFINITY;

  readonly #uncork = (): void => {
    const socket = this.#corked;
    this.#corked = undefined;
    socket?.uncork();
  };

  readonly #ride = (): void => {
    clearTimeout(this.#riderTimer);
    this.#riderTimer = undefined;
    this.#riderDue = Number.POSITIVE_INFINITY;
    const riders = this.#riders;
    this.#riders = [];
    for (const ride of riders) {
      try {
        ride();
      } catch {
        // Its connection closed or draining: what could not be sent is as if lost (withNextWrite).
      }
    }
  };

  override send(frame: Uint8Array): void {
    const socket = this.socket as Socket | undefined;
    const opens = !!socket && !this.#corked && !socket.destroyed && !this.isClosed;
    if (opens) {
      socket.cork();
      this.#corked = socket;
      setImmediate(this.#uncork);
    }
    super.send(frame);
    // Their frames reach this transport in a microtask of this turn, before it is uncorked.
    if (opens && this.#riders.length > 0) this.#ride();
  }

  /** `ride` in this turn when it writes, else in the next turn that writes, or after `maxMs`. */
  withNextWrite(ride: () => void, maxMs: number): void {
    this.#riders.push(ride);
    if (this.#corked) {
      this.#ride();
      return;
    }
    const due = performance.now() + maxMs;
    if (due >= this.#riderDue) return;
    clearTimeout(this.#riderTimer);
    this.#riderDue = due;
    this.#riderTimer = setTimeout(this.#ride, maxMs);
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

/**
 * Runs `send` (a publish nobody waits for: a plain ack) in the connection's next event-loop turn
 * that writes anyway, so its frame joins that turn's socket write instead of costing one of its
 * own; at the latest after `maxMs`. Only for what may be lost: a `send` that throws (the
 * connection closed or draining meanwhile) is dropped. Whoever holds such frames sends them
 * before a drain (a consumer's stop sends its held acks). On a connection without this
 * transport, at once.
 */
export function withNextWrite(nc: NatsConnection, send: () => void, maxMs: number): void {
  const transport = (nc as NatsConnectionImpl).protocol?.transport;
  if (transport instanceof TurnBatchedTransport) transport.withNextWrite(send, maxMs);
  else send();
}
