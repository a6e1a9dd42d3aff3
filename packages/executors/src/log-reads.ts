import { CpError } from '@computepods/protocol';
import { commandPath } from '@computepods/transport';
import type { LogRead } from './backend.js';
import { ensureOk, type HostResult } from './slurm-host.js';

// For each (file, 1-based start, most bytes): one line, "-" when there is no regular file,
// else its size, a space, and the bytes from the start in base64 (any byte survives the text
// channel). Names come as arguments, never parsed by the shell.
const READ_SCRIPT =
  'while [ $# -ge 3 ]; do f=$1; o=$2; m=$3; shift 3; ' +
  'if [ -f "$f" ] && s=$(stat -c %s -- "$f"); then printf "%s " "$s"; ' +
  'tail -c +"$o" -- "$f" | head -c "$m" | base64 -w 0; echo; else echo -; fi; done';

interface Pending {
  readonly path: string;
  readonly offset: number;
  readonly maxBytes: number;
  resolve(read: LogRead | undefined): void;
  reject(err: unknown): void;
}

/** Files read in one command at most (its argument list stays far below any limit). */
const MAX_PER_COMMAND = 100;

/**
 * Reads pieces of task output files where the cluster's user sees them (sudo, or SSH through
 * the pool), gathering the reads asked within a few milliseconds into one command: a runner
 * following the logs of a hundred running tasks runs one command per look, not two hundred.
 */
export class LogReads {
  #pending: Pending[] = [];
  #timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly run: (argv: readonly string[]) => Promise<HostResult>,
    private readonly windowMs = 10,
  ) {}

  read(path: string, offset: number, maxBytes: number): Promise<LogRead | undefined> {
    const checked = commandPath(path, 'task log');
    return new Promise((resolve, reject) => {
      this.#pending.push({ path: checked, offset, maxBytes, resolve, reject });
      this.#timer ??= setTimeout(() => this.#flush(), this.windowMs);
    });
  }

  #flush(): void {
    this.#timer = undefined;
    const all = this.#pending;
    this.#pending = [];
    for (let i = 0; i < all.length; i += MAX_PER_COMMAND)
      void this.#readBatch(all.slice(i, i + MAX_PER_COMMAND));
  }

  async #readBatch(batch: readonly Pending[]): Promise<void> {
    try {
      const args = batch.flatMap((p) => [p.path, String(p.offset + 1), String(p.maxBytes)]);
      const res = ensureOk(
        `read ${batch.length} task log(s)`,
        await this.run(['sh', '-c', READ_SCRIPT, 'sh', ...args]),
      );
      const lines = res.stdout.split('\n');
      for (const [i, p] of batch.entries()) {
        const line = lines[i] ?? '';
        if (line === '-') {
          p.resolve(undefined);
          continue;
        }
        const m = /^(\d+) ([A-Za-z0-9+/=]*)$/.exec(line);
        if (!m)
          p.reject(
            new CpError(
              'CP_RESOURCE_COMMAND',
              `reading ${p.path} answered ${JSON.stringify(line.slice(0, 200))}`,
              { retryable: true },
            ),
          );
        else p.resolve({ size: Number(m[1]), data: Buffer.from(m[2] ?? '', 'base64') });
      }
    } catch (err) {
      for (const p of batch) p.reject(err);
    }
  }
}
