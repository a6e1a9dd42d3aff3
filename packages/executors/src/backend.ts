import type { ResourceType, TaskRecord, TaskState } from '@computepods/protocol';

export type LogStream = 'stdout' | 'stderr';

/** A piece of a task's output file: `data` from the offset asked, and the file's size. */
export interface LogRead {
  readonly data: Buffer;
  readonly size: number;
}

/** What a backend may change on a record besides its state. */
export type RecordPatch = Partial<
  Pick<
    TaskRecord,
    'pid' | 'jobId' | 'exitCode' | 'reason' | 'stdoutPath' | 'stderrPath' | 'handle' | 'stopping'
  >
>;

/**
 * The executor's side of a backend: every state change goes through here, so it is checked
 * against the lifecycle, recorded (awaited) and only then published and acted on.
 */
export interface BackendContext {
  get(taskId: string): TaskRecord | undefined;
  /**
   * Moves the task to `to` if it is still in one of `from` (and `when` holds for its record);
   * resolves with the recorded record (act on it after), or undefined when the task had moved on
   * meanwhile (killed, paused). `to` may be several states, passed through in one write (the
   * patch goes with the last), each announced in order as a write of several does.
   */
  advance(
    taskId: string,
    from: readonly TaskState[],
    to: TaskState | readonly TaskState[],
    patch?: RecordPatch,
    when?: (rec: TaskRecord) => boolean,
  ): Promise<TaskRecord | undefined>;
  /** Records a change that is not a transition (a job id, a new job folder). */
  update(taskId: string, patch: RecordPatch): Promise<TaskRecord | undefined>;
  /** Transport errors outlived their retries: pause the task, showing why. */
  pauseForError(taskId: string, err: unknown): Promise<void>;
  log(level: 'info' | 'warn' | 'error', msg: string, data?: Record<string, unknown>): void;
}

/**
 * The tasks whose output is still being read to be published: the runner's task-log publisher,
 * until each log's end marker is acknowledged or it gave up on it (saying why). A backend's
 * sweep leaves what holds their output (a task folder, a job folder, a Job's log copy),
 * whatever the keep time. Not given: every log counts as published.
 */
export type UnpublishedLogs = () => Iterable<TaskRecord>;

/** Backend.earlierStart's answer. */
export type EarlierStart =
  /** It never started it: run it. */
  | { readonly kind: 'none' }
  /** It did: follow that copy (Backend.followEarlier), never start another. */
  | EarlierStarted
  /** It cannot be told: not run (recorded failed with this reason). */
  | { readonly kind: 'unknown'; readonly reason: string };
/** Started by `runner` (the attempt before's), in the task folder `dir`. */
export type EarlierStarted = {
  readonly kind: 'started';
  readonly dir: string;
  readonly runner: string;
};

/**
 * States a new task is recorded in together with "created", in the same write (a local pool
 * with a free slot: submitted and running), and what goes with them. `release` undoes what the
 * backend reserved when that write fails.
 */
export interface Admission {
  readonly path: readonly TaskState[];
  readonly patch?: RecordPatch;
  release?(): void;
}

/**
 * A computational backend. The executor calls these after the matching transition was
 * recorded; a backend never changes a state except through its BackendContext, which it is
 * given when it is made (the executor makes it: ExecutorOptions.backend).
 */
export interface Backend {
  readonly type: ResourceType;
  /** Optional: how far a new task may be recorded at once (see Admission); enqueue follows. */
  admit?(rec: TaskRecord): Admission | undefined;
  /**
   * A new (or resumed) task in state created, or in the last state of its admission: submit
   * it when the backend sees fit.
   */
  enqueue(rec: TaskRecord): void;
  /** The task was recorded paused (rec.pausedFrom says from where): let go of it. */
  pause(rec: TaskRecord): Promise<void>;
  /** The task was recorded back in the state it was paused in: take it up again. */
  resume(rec: TaskRecord): Promise<void>;
  /**
   * Optional: what the killed record says besides, written with it (the local backend: that the
   * task's processes may still run, `stopping`, when it has any to signal).
   */
  killPatch?(rec: TaskRecord, from: TaskState): RecordPatch;
  /** The task was recorded killed (it was in `from`): stop it. */
  kill(rec: TaskRecord, from: TaskState): Promise<void>;
  /** After a restart: the records found for this resource, to reconcile with reality. */
  adopt(recs: readonly TaskRecord[]): Promise<void>;
  /**
   * Optional: whether the attempt before a task MajorDomo queued again (`rec`: its record as
   * read, created, naming the runner that attempt was with) may have started it. Without it, it
   * never did (only a local task can start before its start is recorded).
   */
  earlierStart?(rec: TaskRecord): EarlierStart;
  /**
   * Follows the copy the attempt before started (earlierStart said `started`): `rec`, created,
   * is recorded running there and its end collected; it is never started again.
   */
  followEarlier?(rec: TaskRecord, start: EarlierStarted): void;
  /** The task's output so far (the last `maxBytes`). */
  logs(rec: TaskRecord, stream: LogStream, maxBytes: number): Promise<string>;
  /**
   * Up to `maxBytes` of the task's output file from `offset`, read where the file is (locally,
   * or as the cluster's user over sudo or SSH), with the file's size at the time; undefined
   * while there is no such file. For publishing logs as they grow (a size below an offset
   * already read means the file started over).
   */
  readLog?(
    rec: TaskRecord,
    stream: LogStream,
    offset: number,
    maxBytes: number,
  ): Promise<LogRead | undefined>;
  /** Counters for benchmarks and $SRV stats (squeue calls, sbatch calls ...). */
  stats(): Readonly<Record<string, number>>;
  /** Stops watching; tasks already running are left to run (a restart adopts them). */
  close(): Promise<void>;
}
