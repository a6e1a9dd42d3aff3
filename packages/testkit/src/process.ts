import { type ChildProcess, spawn } from 'node:child_process';
import { ServerStartError } from './errors.js';

export interface ManagedProcessOptions {
  readonly name: string;
  readonly command: string;
  readonly args?: readonly string[];
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
  /** Keep at most this many characters of combined output for diagnostics. */
  readonly keepOutput?: number;
  /**
   * Own process group: a Ctrl-C in the terminal reaches only the parent, which can then stop
   * things in order (services drain before their nats-server goes).
   */
  readonly detached?: boolean;
}

/**
 * Children still running, asked to stop (SIGTERM) when this process exits without having
 * disposed them: a bench or script that throws at its top level exits at once, and its servers
 * and services ran on with nobody to stop them (two pnpm bench cbuild runs that threw left a
 * nats-server and five processes each for nearly an hour). SIGTERM, not SIGKILL: services
 * stop their own children (the runner's spawners) on it.
 */
const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of live) child.kill('SIGTERM');
});

/**
 * A child process owned by a test: output is captured (for waitFor and for error messages),
 * and it is always killed on dispose, or when the process that started it exits. Only
 * processes started here are ever signalled.
 */
export class ManagedProcess implements AsyncDisposable {
  readonly name: string;
  #child: ChildProcess;
  #output = '';
  #keep: number;
  #exited: Promise<number | null>;
  #waiters = new Set<() => void>();
  exitCode: number | null | undefined = undefined;

  constructor(options: ManagedProcessOptions) {
    this.name = options.name;
    this.#keep = options.keepOutput ?? 1_000_000;
    this.#child = spawn(options.command, options.args ?? [], {
      env: options.env ?? process.env,
      cwd: options.cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: options.detached ?? false,
    });
    const onData = (chunk: Buffer) => {
      this.#output += chunk.toString('utf8');
      if (this.#output.length > this.#keep) this.#output = this.#output.slice(-this.#keep);
      for (const w of this.#waiters) w();
    };
    this.#child.stdout?.on('data', onData);
    this.#child.stderr?.on('data', onData);
    live.add(this.#child);
    this.#exited = new Promise((resolve) => {
      this.#child.on('exit', (code, signal) => {
        live.delete(this.#child);
        this.exitCode = code ?? (signal ? null : code);
        for (const w of this.#waiters) w();
        resolve(code);
      });
      this.#child.on('error', (err) => {
        live.delete(this.#child);
        this.#output += `\nspawn error: ${err.message}`;
        this.exitCode = -1;
        for (const w of this.#waiters) w();
        resolve(-1);
      });
    });
  }

  get pid(): number | undefined {
    return this.#child.pid;
  }

  get output(): string {
    return this.#output;
  }

  get running(): boolean {
    return this.exitCode === undefined;
  }

  /** Resolves when the output matches, rejects if the process exits first or time runs out. */
  async waitForOutput(pattern: RegExp | string, timeoutMs = 30_000, from = 0): Promise<string> {
    const test = () => {
      const text = this.#output.slice(from);
      if (typeof pattern === 'string') return text.includes(pattern) ? pattern : undefined;
      return pattern.exec(text)?.[0];
    };
    return new Promise((resolve, reject) => {
      const check = () => {
        const hit = test();
        if (hit !== undefined) return done(() => resolve(hit));
        if (!this.running)
          return done(() =>
            reject(new ServerStartError(this.name, `exited (${this.exitCode}):\n${this.tail()}`)),
          );
      };
      const timer = setTimeout(
        () =>
          done(() =>
            reject(
              new ServerStartError(this.name, `no ${pattern} in ${timeoutMs} ms:\n${this.tail()}`),
            ),
          ),
        timeoutMs,
      );
      const done = (fn: () => void) => {
        clearTimeout(timer);
        this.#waiters.delete(check);
        fn();
      };
      this.#waiters.add(check);
      check();
    });
  }

  tail(chars = 4000): string {
    return this.#output.slice(-chars);
  }

  signal(sig: NodeJS.Signals): void {
    if (this.running) this.#child.kill(sig);
  }

  /** SIGKILL, as a crash would: no cleanup runs in the child. */
  async kill9(): Promise<void> {
    this.signal('SIGKILL');
    await this.#exited;
  }

  /** SIGTERM, then SIGKILL after graceMs. Returns the exit code (null when killed by signal). */
  async stop(graceMs = 5_000): Promise<number | null> {
    if (!this.running) return this.exitCode ?? null;
    this.signal('SIGTERM');
    const timer = setTimeout(() => this.signal('SIGKILL'), graceMs);
    const code = await this.#exited;
    clearTimeout(timer);
    return code;
  }

  async exited(): Promise<number | null> {
    return this.#exited;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}
