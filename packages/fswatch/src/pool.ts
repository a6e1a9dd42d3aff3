import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { WorkerPoolError } from './errors.js';
import { WORKER_SOURCE } from './worker-source.js';

/** [mtimeNs, ctimeNs, size, ino] as the worker reports them. */
export type RawStat = [bigint, bigint, bigint, bigint];

export type CheckResult =
  | { kind: 'missing' | 'dir' | 'other' }
  | { kind: 'same'; stat: RawStat }
  | { kind: 'probe'; stat: RawStat; verifiedNs: bigint }
  | {
      kind: 'hashed' | 'unstable';
      stat: RawStat;
      sha256: string;
      verifiedNs: bigint;
      bytes: number;
    }
  | { kind: 'error'; errno: string };

export interface CheckItem {
  path: string;
  expect: RawStat | null;
  /** Hash even if the stat matches `expect` (a racy stamp). */
  force?: boolean;
  /**
   * A path never seen: a regular file over 64 KiB is only lstat'ed and reported as `probe`
   * (a rename is recognised before it is read); a smaller one is hashed at once.
   */
  probe?: boolean;
}

export type ScanResult =
  | { errno: string }
  | {
      /** Regular files, sorted, NUL-joined; `stats` holds 4 int64 each, in the same order. */
      files: string;
      fileCount: number;
      stats: BigInt64Array;
      /** Other entries, NUL-joined, with their kinds: 2 directory, 3 symlink, 4 other. */
      others: string;
      otherCount: number;
      otherKinds: Uint8Array;
    };

interface Task {
  msg: Record<string, unknown>;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
}

interface Slot {
  worker: Worker;
  task: Task | null;
}

/** Read size for hashing: large enough that syscalls are noise, small enough to stay in L2/L3. */
export const HASH_BUFFER_BYTES = 1 << 20;

/**
 * A few worker threads doing blocking file I/O and hashing, so the event loop never waits
 * on a large file. Idle workers are unref'd: a pool nobody uses does not keep a process alive.
 */
export class WorkerPool {
  private readonly slots: Slot[] = [];
  private readonly queue: Task[] = [];
  private nextId = 1;

  constructor(readonly size: number) {}

  check(items: CheckItem[], bufSize = HASH_BUFFER_BYTES): Promise<CheckResult[]> {
    return this.run({ op: 'check', items, bufSize }) as Promise<CheckResult[]>;
  }

  hash(path: string, bufSize = HASH_BUFFER_BYTES): Promise<CheckResult> {
    return this.run({ op: 'hash', path, bufSize }) as Promise<CheckResult>;
  }

  scan(dirs: string[]): Promise<ScanResult[]> {
    return this.run({ op: 'scan', dirs }) as Promise<ScanResult[]>;
  }

  /** Starts the workers now, so their boot overlaps with other start-up work. */
  warm(): void {
    while (this.slots.length < this.size) this.spawn().worker.unref();
  }

  /** Terminates the workers; queued and running tasks reject. */
  async destroy(): Promise<void> {
    const err = new WorkerPoolError('destroyed');
    for (const t of this.queue.splice(0)) t.reject(err);
    await Promise.all(
      this.slots.splice(0).map((s) => {
        s.task?.reject(err);
        return s.worker.terminate();
      }),
    );
  }

  private run(msg: Record<string, unknown>): Promise<unknown> {
    return new Promise((resolve, reject) => {
      this.queue.push({ msg: { ...msg, id: this.nextId++ }, resolve, reject });
      this.dispatch();
    });
  }

  private dispatch(): void {
    for (let task = this.queue[0]; task !== undefined; task = this.queue[0]) {
      let slot = this.slots.find((s) => s.task === null);
      if (!slot && this.slots.length < this.size) slot = this.spawn();
      if (!slot) return;
      this.queue.shift();
      slot.task = task;
      slot.worker.ref();
      slot.worker.postMessage(task.msg);
    }
  }

  private spawn(): Slot {
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      name: 'fswatch-io',
      // Plain CommonJS: the parent's loader flags (tsx under tests and benches) would only
      // slow the boot of every worker.
      execArgv: [],
      // A stat walk allocates a Stats object per file; a larger young generation means far
      // fewer scavenges (5–10% of a 100k-file walk in a fresh process).
      resourceLimits: { maxYoungGenerationSizeMb: 64 },
    });
    const slot: Slot = { worker, task: null };
    worker.on('message', (m: { id: number; result?: unknown; error?: string }) => {
      const task = slot.task;
      slot.task = null;
      worker.unref();
      if (task) {
        if (m.error !== undefined) task.reject(new WorkerPoolError(`the task failed: ${m.error}`));
        else task.resolve(m.result);
      }
      this.dispatch();
    });
    const fail = (err: Error) => {
      const i = this.slots.indexOf(slot);
      if (i >= 0) this.slots.splice(i, 1);
      slot.task?.reject(err);
      slot.task = null;
      this.dispatch();
    };
    worker.on('error', (err) =>
      fail(new WorkerPoolError(`a worker failed: ${err.message}`, { cause: err, retryable: true })),
    );
    worker.on('exit', (code) =>
      fail(new WorkerPoolError(`a worker exited with code ${code}`, { retryable: true })),
    );
    this.slots.push(slot);
    return slot;
  }
}

let shared: WorkerPool | undefined;

/** The process-wide pool: two workers on two cores, at most four. */
export function sharedPool(): WorkerPool {
  shared ??= new WorkerPool(Math.max(2, Math.min(4, availableParallelism())));
  return shared;
}
