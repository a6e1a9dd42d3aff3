import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { constants } from 'node:os';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { taskBaseEnv } from './task-env.js';

const SCRIPT = fileURLToPath(new URL('./spawner.py', import.meta.url));

export interface SpawnRequest {
  /** The task folder: pid, exit, stdout and stderr go there. */
  readonly dir: string;
  readonly cwd: string;
  /** Run as `sh -c` would run it (a plain command without the shell: spawner.py). */
  readonly command: string;
  /** Laid over the spawner's own environment. */
  readonly env: Readonly<Record<string, string>>;
  /**
   * One life of the task's record (local-backend.ts lifeOf): the folder's `life` symlink, made
   * as the start's claim. A folder holding this life already ends the request `claimed`
   * (nothing started); one of another life, or of none, is stale: emptied and taken. Without
   * it, an existing folder is always emptied and taken.
   */
  readonly life?: string | undefined;
  /** The restart of a task recorded running: its folder is emptied and taken, whatever life it holds. */
  readonly reuse?: boolean;
}

/** How a spawned task ended, as far as the spawner knows. */
export type SpawnEnd =
  | { readonly kind: 'exit'; readonly code: number; readonly times?: SpawnTimes }
  | { readonly kind: 'signal'; readonly signal: string }
  /** It never started (a cwd that does not exist, a NUL byte ...). */
  | { readonly kind: 'failed'; readonly error: string }
  /** The spawner died first: the end is to be found in the task folder (pid and exit files). */
  | { readonly kind: 'lost' }
  /** Not started: its folder holds this life of the task already, claimed by another start (spawner.py). */
  | { readonly kind: 'claimed' };

/** The spawner's moments of one task (CLOCK_MONOTONIC, ns) and its processes' CPU (µs). */
export interface SpawnTimes {
  readonly readNs: number;
  readonly spawnedNs: number;
  readonly reapedNs: number;
  readonly cpuUs: number;
}

export interface SpawnWatch {
  started(pid: number): void;
  ended(end: SpawnEnd): void;
  /** Its request is being written to the co-process (just before). */
  sent?(): void;
}

export interface SpawnerOptions {
  /** The tasks' base environment (default the runner's own, less its secrets); a request's env is laid over it. */
  readonly env?: NodeJS.ProcessEnv;
  readonly log?: (level: 'warn' | 'error', msg: string, data?: Record<string, unknown>) => void;
  /** Exits come with the spawner's times (SpawnTimes; task-stages.ts). */
  readonly times?: boolean;
  /** How long a started task's pid waits for its exit, to go in one write (default 100 ms; tests). */
  readonly pidHoldMs?: number;
}

/**
 * Starts local tasks through one long-lived Python co-process (spawner.py) that uses
 * posix_spawn: a vfork-style spawn costs the same from any parent, where Node's fork of the
 * runner copies its page tables every time. Started on first use, and again after it died; its
 * death leaves the tasks it started running (their own sessions), reported `lost`. A plain
 * command's death by signal N is reported as sh reports it, exit 128 + N; a wrapper's, `signal`.
 */
export class Spawner {
  readonly #env: NodeJS.ProcessEnv;
  readonly #log: NonNullable<SpawnerOptions['log']>;
  readonly #times: boolean;
  readonly #pidHoldMs: number | undefined;
  #proc: ChildProcessWithoutNullStreams | undefined;
  #seq = 0;
  /** Requests of the current co-process, until they ended. */
  #watching = new Map<number, SpawnWatch>();
  #closed = false;
  #spawned = 0;
  /** Request lines of this turn and the co-process they are for, written at its end (#send). */
  #outbox: {
    proc?: ChildProcessWithoutNullStreams;
    lines: string[];
    watches: SpawnWatch[];
  } = { lines: [], watches: [] };

  constructor(options: SpawnerOptions = {}) {
    this.#env = options.env ?? taskBaseEnv();
    this.#log = options.log ?? (() => {});
    this.#times = options.times ?? false;
    this.#pidHoldMs = options.pidHoldMs;
  }

  /** The co-process's pid while it runs. */
  get pid(): number | undefined {
    return this.#proc?.pid;
  }

  /** Requests sent and not yet ended (the tasks this spawner has in flight). */
  get inFlight(): number {
    return this.#watching.size;
  }

  /** Co-processes started so far (one, unless one died). */
  get started(): number {
    return this.#spawned;
  }

  /** Starts the co-process ahead of the first task. */
  warm(): void {
    if (!this.#closed && !this.#proc) this.#start();
  }

  run(req: SpawnRequest, watch: SpawnWatch): void {
    // Stopping: start nothing. A task already recorded running is started by the restarted
    // runner, which finds no pid file for it.
    if (this.#closed) return;
    const proc = this.#proc ?? this.#start();
    const seq = ++this.#seq;
    this.#watching.set(seq, watch);
    const env = Object.entries(req.env).map(([k, v]) => `${hex(k)}.${hex(v)}`);
    const fields = [resolve(req.dir), resolve(req.cwd), req.command].map(hex);
    const verb = req.reuse ? 'rerun' : 'run';
    const life = req.life ? hex(req.life) : '-';
    this.#send(proc, `${verb} ${seq} ${fields.join(' ')} ${env.join(',') || '-'} ${life}\n`, watch);
  }

  /**
   * Requests made in one run of this process's code go to the co-process in one write, in a
   * microtask after it (tasks started by one batch of KV replies or of ends read from the
   * spawner: one pipe write and one wakeup of the spawner, not one each), and before the
   * microtasks queued after it (the records of those tasks' ends, say), not at the end of the
   * event-loop turn behind them.
   */
  #send(proc: ChildProcessWithoutNullStreams, line: string, watch: SpawnWatch): void {
    // Lines for a co-process that died since are dropped: its requests were reported lost.
    if (this.#outbox.proc !== proc) this.#outbox = { proc, lines: [], watches: [] };
    const box = this.#outbox;
    if (box.lines.length === 0)
      queueMicrotask(() => {
        const data = box.lines.join('');
        const watches = box.watches;
        box.lines = [];
        box.watches = [];
        // Stopped, or replaced meanwhile: nothing is started (see run and close).
        if (this.#proc !== proc || !data) return;
        // Said before the write: the spawner, woken by it, may run before this process goes on.
        for (const w of watches) w.sent?.();
        proc.stdin.write(data);
      });
    box.lines.push(line);
    if (watch.sent) box.watches.push(watch);
  }

  /**
   * Takes no more work. The co-process is not stopped: it leaves by itself once the tasks it
   * started have ended and their exit files are written.
   */
  close(): void {
    this.#closed = true;
    const proc = this.#proc;
    this.#proc = undefined;
    this.#watching = new Map();
    if (!proc) return;
    proc.stdin.end();
    proc.stdout.destroy();
    proc.stderr.destroy();
    proc.unref();
  }

  #start(): ChildProcessWithoutNullStreams {
    const python = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
    // Its own session: a signal to the runner's process group (Ctrl-C) does not reach it.
    const args = ['-I', '-S', SCRIPT, ...(this.#times ? ['--times'] : [])];
    if (this.#pidHoldMs !== undefined) args.push(`--pid-hold=${this.#pidHoldMs / 1000}`);
    const proc = spawn(python, args, {
      env: this.#env,
      cwd: '/',
      detached: true,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.#spawned++;
    this.#proc = proc;
    const watching = new Map<number, SpawnWatch>();
    this.#watching = watching;
    let started = false;
    let pending = '';
    proc.stdout.setEncoding('latin1');
    proc.stdout.on('data', (chunk: string) => {
      started = true;
      const lines = (pending + chunk).split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) this.#onLine(watching, line);
    });
    proc.stderr.setEncoding('utf8');
    proc.stderr.on('data', (text: string) =>
      this.#log('warn', 'task spawner says', { text: text.trim().slice(0, 2000) }),
    );
    // Writes to a co-process that just died fail here; its exit reports the requests lost.
    proc.stdin.on('error', () => {});
    let gone = false;
    const ended = (why: string, neverRan: boolean) => {
      if (gone) return;
      gone = true;
      if (this.#proc === proc) this.#proc = undefined;
      if (this.#closed) return;
      this.#log('warn', 'the task spawner ended; its tasks are followed through their folders', {
        why,
        tasks: watching.size,
      });
      const end: SpawnEnd = neverRan
        ? { kind: 'failed', error: `the task spawner (${python}) could not start: ${why}` }
        : { kind: 'lost' };
      for (const w of watching.values()) w.ended(end);
      watching.clear();
    };
    proc.once('error', (err) => ended(err.message, !started && proc.pid === undefined));
    proc.once('close', (code, signal) => ended(`exit ${code ?? signal}`, false));
    return proc;
  }

  #onLine(watching: Map<number, SpawnWatch>, line: string): void {
    const [kind, seqText, a, b, ...times] = line.split(' ');
    const seq = Number(seqText);
    const watch = watching.get(seq);
    if (!watch) return;
    if (kind === 'pid') {
      watch.started(Number(a));
      return;
    }
    watching.delete(seq);
    if (kind === 'exit') watch.ended({ kind: 'exit', code: Number(a), ...timesOf(b, times) });
    else if (kind === 'signal') watch.ended({ kind: 'signal', signal: signalName(Number(a)) });
    else if (kind === 'claimed') watch.ended({ kind: 'claimed' });
    else {
      const detail = Buffer.from(b ?? '', 'hex').toString('utf8');
      watch.ended({ kind: 'failed', error: `${a}: ${detail}` });
    }
  }
}

/** An exit line's times (spawner.py --times), when it has them. */
function timesOf(first: string | undefined, rest: string[]): { times?: SpawnTimes } {
  const [readNs, spawnedNs, reapedNs, cpuUs] = [first, ...rest].map(Number);
  if (
    readNs === undefined ||
    spawnedNs === undefined ||
    reapedNs === undefined ||
    cpuUs === undefined ||
    [readNs, spawnedNs, reapedNs, cpuUs].some(Number.isNaN)
  )
    return {};
  return { times: { readNs, spawnedNs, reapedNs, cpuUs } };
}

function hex(text: string): string {
  return Buffer.from(text, 'utf8').toString('hex');
}

function signalName(n: number): string {
  for (const [name, num] of Object.entries(constants.signals)) if (num === n) return name;
  return `signal ${n}`;
}
