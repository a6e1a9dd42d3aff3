import { connect, createServer, type Server, type Socket } from 'node:net';

/**
 * A TCP relay in front of a nats-server for a test: clients connect to `url` instead. Once
 * armed, the first connection the server delivers a message on `subject` to (a `MSG <subject>`
 * line) is cut off on its way back: the message reaches the client, but nothing the client
 * sends after it (its KV write recording the task, its ack) reaches the server; and from then
 * on the relay takes no new connection (the client cannot reconnect around the cut) until
 * `open()`. So a client can be caught, deterministically, having pulled a message it can never
 * record: a network partition right after a delivery. Other connections pass untouched.
 */
export class NatsGate implements AsyncDisposable {
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  #armed: string | undefined;
  #refusing = false;
  #caught: (() => void) | undefined;
  url = '';

  private constructor(target: { host: string; port: number }) {
    this.#server = createServer((client) => {
      if (this.#refusing) {
        client.destroy();
        return;
      }
      const upstream = connect(target.port, target.host);
      this.#sockets.add(client).add(upstream);
      let cut = false;
      let tail = '';
      upstream.on('data', (chunk: Buffer) => {
        const wanted = this.#armed;
        if (wanted !== undefined && !cut) {
          // A MSG line may be split between two chunks: look at the end of the last one too.
          const text = tail + chunk.toString('latin1');
          if (text.includes(`MSG ${wanted} `)) {
            cut = true;
            this.#refusing = true;
            this.#armed = undefined;
            this.#caught?.();
          }
          tail = text.slice(-256);
        }
        client.write(chunk);
      });
      client.on('data', (chunk: Buffer) => {
        if (!cut) upstream.write(chunk);
      });
      const close = () => {
        client.destroy();
        upstream.destroy();
      };
      client.on('close', close).on('error', close);
      upstream.on('close', close).on('error', close);
    });
  }

  static async start(natsUrl: string): Promise<NatsGate> {
    const u = new URL(natsUrl);
    const gate = new NatsGate({ host: u.hostname, port: Number(u.port || 4222) });
    await new Promise<void>((r) => gate.#server.listen(0, '127.0.0.1', () => r()));
    const addr = gate.#server.address();
    if (!addr || typeof addr === 'string') throw new Error('the NATS gate has no TCP address');
    gate.url = `nats://127.0.0.1:${addr.port}`;
    return gate;
  }

  /** Resolves once a connection was given a message on `subject` and cut off after it. */
  catchNext(subject: string): Promise<void> {
    this.#armed = subject;
    return new Promise((resolve) => {
      this.#caught = resolve;
    });
  }

  /** Takes new connections again (after a catch). */
  open(): void {
    this.#refusing = false;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((r) => this.#server.close(() => r()));
  }
}
