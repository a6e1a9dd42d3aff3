import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Writable } from 'node:stream';
import { PosixUsername } from '@computepods/protocol';
import { commandPath, sha256File, VerifyError } from '@computepods/transport';
import { ResourceCommandError, UnsafeValueError } from './errors.js';
import { type JobTree, readInput } from './slurm-files.js';
import { ensureOk, type HostResult, isSecretJobFile, type SlurmHost } from './slurm-host.js';

/** What a command reads on stdin: text, or a local file streamed in. */
type Input = string | { readonly file: string };

// Hashes files one per line, in order, reading each on stdin so no name is ever parsed back.
const HASH_SCRIPT = 'for f in "$@"; do sha256sum < "$f" || exit 1; done';
const HASH_LINE = /^([0-9a-f]{64}) {2}-$/;

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

  // Everything is written as the job user, so the job can read its inputs and nothing in the
  // pod's workspace is ever owned by that user; input copies are checked by SHA-256 as the
  // user reads them.
  async stageJob(
    dir: string,
    files: Readonly<Record<string, string>>,
    tree?: JobTree,
  ): Promise<void> {
    // Every path reaching a command goes through commandPath: no control characters, never
    // read as an option (the names below the job folder come from task messages).
    const dirs = [dir, ...(tree?.dirs ?? []).map((d) => `${dir}/${d}`)].map((d) =>
      commandPath(d, 'job folder'),
    );
    ensureOk(`mkdir ${dir} as ${this.#user}`, await this.run(['mkdir', '-p', '--', ...dirs]));
    const copies = tree?.copies ?? [];
    for (const c of copies) {
      const to = commandPath(`${dir}/${c.to}`, 'files.inputs');
      const res = await this.#sudo(
        ['sh', '-c', 'mkdir -p -- "$(dirname -- "$1")" && cat > "$1"', 'sh', to],
        { file: c.from },
      );
      ensureOk(`copy ${c.from} to ${to} as ${this.#user}`, res);
    }
    if (copies.length > 0) {
      const staged = copies.map((c) => ({
        from: c.from,
        path: commandPath(`${dir}/${c.to}`, 'files.inputs'),
      }));
      const res = ensureOk(
        `hash staged inputs as ${this.#user}`,
        await this.run(['sh', '-c', HASH_SCRIPT, 'sh', ...staged.map((c) => c.path)]),
      );
      const got = res.stdout.split('\n').filter(Boolean);
      for (const [i, c] of staged.entries()) {
        const want = await sha256File(c.from);
        const have = HASH_LINE.exec(got[i] ?? '')?.[1] ?? '(missing)';
        if (have !== want) throw new VerifyError(c.path, want, have);
      }
    }
    for (const [name, content] of Object.entries(files)) {
      const to = commandPath(`${dir}/${name}`, 'job file');
      // A credential is readable by the job user alone.
      const write = isSecretJobFile(name) ? 'umask 077; cat > "$1"' : 'cat > "$1"';
      const res = await this.run(['sh', '-c', write, 'sh', to], content);
      ensureOk(`write ${dir}/${name} as ${this.#user}`, res);
    }
  }

  async fetchJob(): Promise<undefined> {
    return undefined;
  }

  // Read as the job user, so a job can hand back only what that user may read; written to a
  // temp name beside the destination, checked against the hash the user's side computed,
  // then renamed over it.
  async fetchFile(remotePath: string, localPath: string): Promise<boolean> {
    const path = commandPath(remotePath, 'files.outputs');
    const check = await this.run([
      'sh',
      '-c',
      '[ -f "$1" ] || exit 3; sha256sum < "$1"',
      'sh',
      path,
    ]);
    if (check.code === 3) return false;
    const want = HASH_LINE.exec(
      ensureOk(`hash ${path} as ${this.#user}`, check).stdout.trim(),
    )?.[1];
    if (!want)
      throw new ResourceCommandError(
        `hash ${path} as ${this.#user}`,
        check.code,
        `sha256sum answered ${JSON.stringify(check.stdout)}, not a hash`,
        false,
      );
    const tmp = join(
      dirname(localPath),
      `.${basename(localPath)}.tmp-${randomBytes(6).toString('hex')}`,
    );
    const hash = createHash('sha256');
    const out = createWriteStream(tmp, { mode: 0o644 });
    try {
      const res = await this.#sudo(['cat', '--', path], undefined, out, (c) => hash.update(c));
      ensureOk(`read ${path} as ${this.#user}`, res);
      const got = hash.digest('hex');
      if (got !== want) throw new VerifyError(localPath, want, got);
      await rename(tmp, localPath);
      return true;
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
  }

  async close(): Promise<void> {}

  /** Runs argv as the user; stdout goes to `sink` (raw bytes, each chunk seen by `onChunk`) when given. */
  #sudo(
    argv: string[],
    input?: Input,
    sink?: Writable,
    onChunk?: (chunk: Buffer) => void,
  ): Promise<HostResult> {
    return new Promise((resolve, reject) => {
      const child = spawn('sudo', ['-n', '-u', this.#user, '--', ...argv], {
        cwd: this.#cwd,
        stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      const written = sink
        ? new Promise<void>((res, rej) => {
            sink.on('finish', res);
            sink.on('error', rej);
          })
        : Promise.resolve();
      if (sink) {
        child.stdout?.on('data', (c: Buffer) => onChunk?.(c));
        child.stdout?.pipe(sink);
      } else
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
        written.then(() => resolve({ code, stdout, stderr }), reject);
      });
      if (child.stdin) {
        child.stdin.on('error', () => undefined);
        if (typeof input === 'object') {
          const from = readInput(input.file);
          from.on('error', (err) => {
            stderr += `cannot read ${input.file}: ${err.message}`;
            child.stdin?.destroy();
          });
          from.pipe(child.stdin);
        } else child.stdin.end(input);
      }
    });
  }
}
