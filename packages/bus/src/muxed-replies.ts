import {
  createInbox,
  errors,
  type Msg,
  type MsgHdrs,
  type NatsConnection,
  NatsConnectionImpl,
  type Subscription,
} from '@nats-io/transport-node';

interface Pending {
  readonly subject: string;
  readonly deadline: number;
  readonly resolve: (m: Msg) => void;
  readonly reject: (err: Error) => void;
}

const SWEEP_MS = 250;

/**
 * Requests answered on one reply subscription per connection: a request is its message and an
 * entry in a map, and one timer sweeps the deadlines.
 *
 * nats.js's `nc.request` makes a reply entry, a timer and a deferred per request, an Error for
 * its async trace, and, once answered, a `RequestError("cancelled")` only to reject its already
 * settled promise (the Error's stack trace is most of the cost). The JetStream acks
 * (acked-publisher.ts) and the KV direct gets (direct-gets.ts) of the hot path come here instead.
 *
 * Failures are nats.js's own: no answer in time, `TimeoutError`; a subject the credentials may
 * not publish on, a `RequestError` caused by the server's `PermissionViolationError`; a closed
 * connection, `ClosedConnectionError`. An answer is handed over as it came, a no-responders
 * status (503, no data) included: each caller names that failure as nats.js does for it.
 */
export class MuxedReplies {
  readonly #nc: NatsConnection;
  readonly #inbox: string;
  readonly #pending = new Map<string, Pending>();
  #sub: Subscription | undefined;
  #timer: NodeJS.Timeout | undefined;
  #next = 0;

  constructor(nc: NatsConnection) {
    this.#nc = nc;
    // Under the connection's own inbox prefix: credentials may subscribe only there (auth roles).
    this.#inbox = createInbox(
      nc instanceof NatsConnectionImpl ? nc.options.inboxPrefix : undefined,
    );
  }

  request(
    subject: string,
    data: Uint8Array | string,
    timeoutMs: number,
    headers?: MsgHdrs,
  ): Promise<Msg> {
    return new Promise<Msg>((resolve, reject) => {
      const token = (this.#next++).toString(36);
      try {
        this.#listen();
        this.#nc.publish(subject, data, {
          reply: `${this.#inbox}.${token}`,
          ...(headers ? { headers } : {}),
        });
      } catch (err) {
        reject(err as Error);
        return;
      }
      const deadline = performance.now() + timeoutMs;
      this.#pending.set(token, { subject, deadline, resolve, reject });
      this.#timer ??= setInterval(() => this.#sweep(), SWEEP_MS).unref();
    });
  }

  #listen(): void {
    if (this.#sub) return;
    this.#sub = this.#nc.subscribe(`${this.#inbox}.*`, {
      callback: (err, m) => (err ? this.#failAll(err) : this.#answer(m)),
    });
    void this.#sub.closed.then(() => {
      this.#sub = undefined;
      this.#failAll(new errors.ClosedConnectionError());
    });
    void this.#watchPermissions();
  }

  #answer(m: Msg): void {
    const token = m.subject.slice(this.#inbox.length + 1);
    const p = this.#pending.get(token);
    if (!p) return; // answered after its deadline
    this.#pending.delete(token);
    p.resolve(m);
  }

  #sweep(): void {
    const now = performance.now();
    for (const [token, p] of this.#pending)
      if (p.deadline <= now) {
        this.#pending.delete(token);
        p.reject(new errors.TimeoutError());
      }
    if (this.#pending.size === 0) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }

  #failAll(err: Error): void {
    for (const p of this.#pending.values()) p.reject(err);
    this.#pending.clear();
  }

  /** A request the server refused (permissions) fails now, as nats.js's does, not at its deadline. */
  async #watchPermissions(): Promise<void> {
    for await (const s of this.#nc.status()) {
      if (s.type !== 'error' || !(s.error instanceof errors.PermissionViolationError)) continue;
      const pe = s.error;
      if (pe.operation !== 'publish') continue;
      for (const [token, p] of this.#pending)
        if (p.subject === pe.subject) {
          this.#pending.delete(token);
          p.reject(new errors.RequestError(pe.message, { cause: pe }));
        }
    }
  }
}

/** An answer that is nats-server's "no responders" status: nobody listens on the subject. */
export function isNoResponders(m: Msg): boolean {
  return m.data.length === 0 && m.headers?.code === 503;
}
