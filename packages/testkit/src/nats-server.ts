import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { defined } from './defined.js';
import { ServerStartError } from './errors.js';
import { ManagedProcess } from './process.js';
import { type ReservedPort, startOnReservedPorts } from './reserved-port.js';
import { TempDir } from './temp-dir.js';
import { which } from './which.js';

export interface NatsServerOptions {
  /** Fixed port; default is a free one chosen by the server (port -1 + ports file). */
  readonly port?: number;
  /** JetStream store; default is a temp dir removed on dispose. */
  readonly storeDir?: string;
  /** JetStream's file storage limit in bytes (`max_file_store`); default the server's (75% of the disk). */
  readonly maxFileStoreBytes?: number;
  readonly startTimeoutMs?: number;
  /** Run in its own process group (see ManagedProcessOptions.detached). */
  readonly detached?: boolean;
  /**
   * More configuration lines, read at every (re)start: operator mode's `operator`, `resolver`
   * and `system_account` (the auth package's serverConfigLines), limits, TLS.
   */
  readonly configLines?: () => readonly string[];
}

const HINT = "install Debian's nats-server (bash scripts/setup does), or set NATS_SERVER_BIN";

/**
 * A real nats-server with JetStream on 127.0.0.1, as nats.js's own test launcher runs it: a
 * generated config with ports_file_dir, wait for the ports file while racing early exit.
 * stop() and start() keep port and store, so tests can restart the server under clients.
 *
 *   await using nats = await NatsServer.start();
 *   const nc = await connect({ servers: nats.url });
 */
export class NatsServer implements AsyncDisposable {
  readonly #dir: TempDir;
  readonly #storeDir: string;
  readonly #timeout: number;
  readonly #detached: boolean;
  readonly #configLines: (() => readonly string[]) | undefined;
  readonly #maxFileStore: number | undefined;
  #port: number;
  /** The port it listens on when none was given: kept across its restarts (reserved-port.ts). */
  #reserved: readonly ReservedPort[] = [];
  #proc: ManagedProcess | undefined;

  private constructor(options: NatsServerOptions) {
    this.#dir = new TempDir('cp-nats-');
    this.#storeDir = options.storeDir ?? this.#dir.join('store');
    this.#port = options.port ?? -1;
    this.#timeout = options.startTimeoutMs ?? 20_000;
    this.#detached = options.detached ?? false;
    this.#configLines = options.configLines;
    this.#maxFileStore = options.maxFileStoreBytes;
  }

  static async start(options: NatsServerOptions = {}): Promise<NatsServer> {
    const server = new NatsServer(options);
    try {
      await server.start();
    } catch (err) {
      await server[Symbol.asyncDispose]();
      throw err;
    }
    return server;
  }

  get url(): string {
    return `nats://127.0.0.1:${this.#port}`;
  }

  get port(): number {
    return this.#port;
  }

  get storeDir(): string {
    return this.#storeDir;
  }

  get pid(): number | undefined {
    return this.#proc?.pid;
  }

  get running(): boolean {
    return this.#proc?.running ?? false;
  }

  /** Starts (or restarts) the server on the same port and store. */
  async start(): Promise<void> {
    if (this.#proc?.running) return;
    if (this.#port !== -1) return this.#startOn();
    // No port given: a reserved one, another if something outside the test kit holds it.
    try {
      this.#reserved = await startOnReservedPorts(
        1,
        (ports) => {
          this.#port = defined(ports[0], 'a reserved port');
          return this.#startOn();
        },
        (err) => /address already in use/.test(String(err)),
      );
    } catch (err) {
      this.#port = -1;
      throw err;
    }
  }

  async #startOn(): Promise<void> {
    const bin = which(process.env.NATS_SERVER_BIN ?? 'nats-server', HINT);
    const portsDir = this.#dir.join('ports');
    rmSync(portsDir, { recursive: true, force: true });
    const config = this.#dir.join('nats.conf');
    writeFileSync(
      config,
      [
        `listen: "127.0.0.1:${this.#port}"`,
        `ports_file_dir: ${JSON.stringify(portsDir)}`,
        `jetstream: { store_dir: ${JSON.stringify(this.#storeDir)}${this.#maxFileStore ? `, max_file_store: ${Math.floor(this.#maxFileStore)}` : ''} }`,
        'max_payload: 8MB',
        ...(this.#configLines?.() ?? []),
        '',
      ].join('\n'),
    );
    mkdirSync(portsDir, { recursive: true });
    const proc = new ManagedProcess({
      name: 'nats-server',
      command: bin,
      args: ['-c', config],
      detached: this.#detached,
    });
    this.#proc = proc;
    const deadline = performance.now() + this.#timeout;
    while (performance.now() < deadline) {
      if (!proc.running) throw new ServerStartError('nats-server', `exited:\n${proc.tail()}`);
      const file = existsSync(portsDir)
        ? readdirSync(portsDir).find((f) => f.endsWith('.ports'))
        : undefined;
      if (file) {
        // The server may still be writing it: an empty or partial file means "look again".
        let ports: { nats?: string[] } = {};
        try {
          ports = JSON.parse(readFileSync(join(portsDir, file), 'utf8')) as { nats?: string[] };
        } catch {
          ports = {};
        }
        const url = ports.nats?.[0];
        if (url) {
          this.#port = Number(new URL(url).port);
          // The ports file appears before JetStream has recovered its streams; the log line
          // says when the server is fully ready for clients.
          await proc.waitForOutput('Server is ready', Math.max(1, deadline - performance.now()));
          return;
        }
      }
      await sleep(25);
    }
    await proc.kill9();
    throw new ServerStartError(
      'nats-server',
      `no ports file within ${this.#timeout} ms:\n${proc.tail()}`,
    );
  }

  /** Graceful stop (SIGTERM). */
  async stop(): Promise<void> {
    await this.#proc?.stop();
  }

  /** Crash stop (SIGKILL): what JetStream had not synced may be lost, as in real life. */
  async kill9(): Promise<void> {
    await this.#proc?.kill9();
  }

  get output(): string {
    return this.#proc?.output ?? '';
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
    for (const r of this.#reserved) r.release();
    this.#dir[Symbol.dispose]();
  }
}
