import { spawn } from 'node:child_process';
import { PosixUsername } from '@computepods/protocol';
import { UnsafeValueError } from './errors.js';
import { ensureOk, type HostResult, type SlurmHost } from './slurm-host.js';

export interface SudoHostOptions {
  readonly username: string;
  /** Extra environment for SLURM client commands (SLURM_CONF for a private cluster config). */
  readonly clientEnv?: Readonly<Record<string, string>>;
  /** Working directory of the commands: one the user may enter (default /). */
  readonly cwd?: string;
  readonly timeoutMs?: number;
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Runs commands as another local user with `sudo -n -u USER` (never a password prompt), on a
 * filesystem shared with the cluster. sudo resets the environment, so the SLURM client env is
 * passed through env(1) as arguments.
 */
export class SudoHost implements SlurmHost {
  readonly label: string;
  readonly #user: string;
  readonly #envArgs: string[];
  readonly #cwd: string;
  readonly #timeoutMs: number;

  constructor(options: SudoHostOptions) {
    if (!PosixUsername.safeParse(options.username).success)
      throw new UnsafeValueError(
        'user name',
        options.username,
        'not a valid POSIX user name (a-z, 0-9, _ and -, starting with a letter or _)',
      );
    this.#user = options.username;
    this.label = `${options.username} via sudo`;
    this.#envArgs = Object.entries(options.clientEnv ?? {}).map(([k, v]) => {
      if (!ENV_NAME.test(k))
        throw new UnsafeValueError('client env name', k, 'not an environment variable name');
      return `${k}=${v}`;
    });
    this.#cwd = options.cwd ?? '/';
    this.#timeoutMs = options.timeoutMs ?? 60_000;
  }

  slurm(argv: readonly string[]): Promise<HostResult> {
    return this.#sudo(['env', ...this.#envArgs, ...argv]);
  }

  run(argv: readonly string[], input?: string): Promise<HostResult> {
    return this.#sudo([...argv], input);
  }

  async stageJob(dir: string, files: Readonly<Record<string, string>>): Promise<void> {
    ensureOk(`mkdir ${dir} as ${this.#user}`, await this.run(['mkdir', '-p', '--', dir]));
    for (const [name, content] of Object.entries(files)) {
      const res = await this.run(['sh', '-c', 'cat > "$1"', 'sh', `${dir}/${name}`], content);
      ensureOk(`write ${dir}/${name} as ${this.#user}`, res);
    }
  }

  async fetchJob(): Promise<undefined> {
    return undefined;
  }

  async close(): Promise<void> {}

  #sudo(argv: string[], input?: string): Promise<HostResult> {
    return new Promise((resolve, reject) => {
      const child = spawn('sudo', ['-n', '-u', this.#user, '--', ...argv], {
        cwd: this.#cwd,
        stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout?.on('data', (c: Buffer) => {
        stdout += c.toString('utf8');
      });
      child.stderr?.on('data', (c: Buffer) => {
        stderr += c.toString('utf8');
      });
      const timer = setTimeout(() => child.kill('SIGKILL'), this.#timeoutMs);
      child.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      child.on('close', (code) => {
        clearTimeout(timer);
        resolve({ code, stdout, stderr });
      });
      if (child.stdin) {
        child.stdin.on('error', () => undefined);
        child.stdin.end(input);
      }
    });
  }
}
