import {
  type Bus,
  decode,
  isWrongLastSequence,
  TASK_LOG_MAX_MSGS_PER_SUBJECT,
} from '@computepods/bus';
import { isTerminal, type LogRead } from '@computepods/executors';
import {
  CpError,
  streams,
  subjects,
  type TaskLogChunk,
  type TaskLogStream,
  type TaskRecord,
} from '@computepods/protocol';
import { LogHolds } from './log-holds.js';

/** How much of each task output is published, and how often files are looked at. */
export interface TaskLogSettings {
  /** Bytes of one task's stdout (and as many of its stderr) published, over all attempts. */
  readonly maxBytes: number;
  /** The largest piece (one message). */
  readonly chunkBytes: number;
  /** Between two looks at a running task's files (more for a task that already sent many pieces). */
  readonly pollMs: number;
}

/** The runner's CP_TASK_LOG_* (config.ts); unset: the defaults below (taskLogSettings). */
export interface TaskLogLimits {
  readonly maxBytes?: number | undefined;
  readonly chunkBytes?: number | undefined;
  readonly pollMs?: number | undefined;
}

export const TASK_LOG_DEFAULTS = { maxBytes: 4 * 1024 * 1024, chunkBytes: 64 * 1024 } as const;

/**
 * The runner's CP_TASK_LOG_* settings (config.ts) with the defaults for what is unset: 4 MiB per
 * output, 64 KiB pieces, a look every 250 ms for local tasks, 1 s where each look is a command
 * run over sudo or SSH.
 */
export function taskLogSettings(
  limits: TaskLogLimits | undefined,
  resourceType: string,
): TaskLogSettings {
  return {
    maxBytes: limits?.maxBytes ?? TASK_LOG_DEFAULTS.maxBytes,
    chunkBytes: limits?.chunkBytes ?? TASK_LOG_DEFAULTS.chunkBytes,
    pollMs: limits?.pollMs ?? (resourceType === 'local' ? 250 : 1_000),
  };
}

export interface TaskLogPublisherOptions {
  readonly bus: Bus;
  /** The queue this runner serves: its credentials may publish only its logs. */
  readonly queue: string;
  readonly settings: TaskLogSettings;
  /** The executor's reader of a task's output file (Executor.readLog). */
  readonly read: (
    rec: TaskRecord,
    stream: TaskLogStream,
    offset: number,
    maxBytes: number,
  ) => Promise<LogRead | undefined>;
}

/** Where a log stands on the stream: what the next piece must say. */
interface Position {
  attempt: number;
  fileOffset: number;
  offset: number;
  index: number;
  /** The subject's last sequence (the publish expects it: one writer, no interleaving). */
  lastSeq: number;
  capped: boolean;
  ended: boolean;
}

// Markers that may still follow once the piece budget is spent: restart, truncated, end.
const RESERVED_MSGS = 4;
// A tail that sent many pieces is looked at less often: index / PACE extra poll periods, so a
// task that prints a line at a time over a day stays within the per-subject bound.
const PACE = 500;
// Each look reads at most this many pieces before letting other tasks' tails go.
const PIECES_PER_LOOK = 16;
// Tries at the last look and end marker (about two minutes) before it is left to the readers'
// own rule (a task recorded ended 30 s ago without an end is over).
const FINISH_ATTEMPTS = 30;
// Room in a message for the envelope and the piece's other fields.
const ENVELOPE_BYTES = 2_048;
const WARN_EVERY_MS = 60_000;

/**
 * Publishes every task's stdout and stderr on NATS as they grow (JetStream `cp_<p>_tasklogs`,
 * subject `cp.<p>.tasklog.<queue>.<task>.<stdout|stderr>`), for `cpctrl logs -f` and the web
 * UI on any machine. It looks at the files of the tasks it runs where they are (locally, or
 * through the executor's sudo/SSH host), at most `chunkBytes` a message and `maxBytes` a log,
 * then a `truncated` marker; when the task ends, a last look, then an `end` marker.
 *
 * Each piece is published expecting the subject's last sequence, so two writers (a runner and
 * its restarted self) can never interleave: the loser reloads where the log stands and goes on
 * from there. A restarted runner does the same for the tasks it adopts, so a kill -9 leaves
 * neither gap nor repeat. When a task's file is shorter than what was published (the task ran
 * again: a restart of its runner before the task began, SLURM running it anew), a `restart`
 * marker opens attempt n+1, whose bytes follow in the same log, offsets going on.
 *
 * A log is unpublished (`unpublished()`, log-holds.ts) from the moment it is followed until its
 * end marker is acknowledged or the publisher gave up on it: the runner's executor sweeps none
 * of the files such a task's log is read from, whatever the keep time.
 */
export class TaskLogPublisher {
  readonly #o: TaskLogPublisherOptions;
  readonly #stream: string;
  readonly #tails = new Map<string, Tail>();
  readonly #holds = new LogHolds();
  /** Tasks whose first record this runner just created: their logs are known to be empty. */
  readonly #fresh = new Set<string>();
  #chunk: Promise<number> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(options: TaskLogPublisherOptions) {
    this.#o = options;
    this.#stream = streams.taskLogs(options.bus.project);
  }

  /** A task changed state (the executor's publish hook): follow it, or finish its log. */
  onState(rec: TaskRecord): void {
    if (this.#closed) {
      // Left to a restarted runner: until then, nothing its log is read from may go.
      if (rec.state === 'running' || isTerminal(rec.state)) this.#holds.keep(rec);
      return;
    }
    const id = rec.task.taskId;
    // Announced only after its create succeeded, so no record of this id existed: no runner can
    // have followed its logs, and asking the stream where they stand (two round trips a task) is
    // skipped. Were a piece there all the same (a record expired and the id reused), the first
    // publish, expecting an empty subject, fails and the log is taken up from where it stands.
    if (rec.state === 'created' && rec.history.length === 1) this.#fresh.add(id);
    if (rec.state === 'running' || isTerminal(rec.state)) {
      if (!rec.stdoutPath && !rec.stderrPath && !isTerminal(rec.state)) return;
      const fresh = this.#fresh.delete(id);
      for (const s of ['stdout', 'stderr'] as const) {
        const key = `${id}\0${s}`;
        // Left empty, as the end record says (emptyAtEnd): that record is the log's end.
        if (isTerminal(rec.state) && rec.emptyLogs?.includes(s)) {
          this.#tails.delete(key);
          this.#holds.settle(id, s);
          continue;
        }
        let tail = this.#tails.get(key);
        if (!tail) {
          // An ended task never seen running here (refused, failed before it ran) still gets an
          // `end`, so a follower is not left waiting.
          tail = new Tail(
            { ...this.#o, chunkBytes: () => this.#chunkBytes() },
            this.#stream,
            rec,
            s,
            () => this.#closed,
            fresh,
          );
          this.#tails.set(key, tail);
        }
        this.#holds.open(rec, s);
        tail.rec = rec;
        if (isTerminal(rec.state))
          void tail.finish().then((settled) => {
            if (this.#tails.get(key) === tail) this.#tails.delete(key);
            if (settled) this.#holds.settle(id, s);
          });
      }
      this.#ensureTimer();
    }
  }

  /**
   * Asked before a task's end is recorded (the executor's beforeEnd): the outputs it left empty,
   * with nothing of their logs on the stream. Those logs are over here (no last look, no end
   * marker: two stored messages less for a quiet task); the end record lists them, and readers
   * end them with it (bus readTaskLog's `record`).
   */
  async emptyAtEnd(rec: TaskRecord): Promise<TaskLogStream[]> {
    const id = rec.task.taskId;
    const empty = await Promise.all(
      (['stdout', 'stderr'] as const).map(async (s) => {
        const tail = this.#tails.get(`${id}\0${s}`);
        if (tail) return (await tail.quietEnd()) ? [s] : [];
        // Never followed: ended before it was recorded running (running and its end are one
        // write). Created by this runner, so nothing of it is on the stream: empty if its file is.
        if (!this.#fresh.has(id) || this.#closed || !(rec.stdoutPath || rec.stderrPath)) return [];
        const got = await this.#o.read(rec, s, 0, 1);
        return !got || got.size === 0 ? [s] : [];
      }),
    );
    return empty.flat();
  }

  /**
   * After a restart, before the executor adopts its tasks (and sweeps): this runner's tasks that
   * ended within `withinMs`, whose logs may lack their last pieces and end, are finished, and
   * are unpublished until they are. `adopting`: the ids the executor takes over (left out).
   * Older ones are left to the readers' own rule (a task ended 30 s ago without an end is over).
   */
  resumeEnded(
    records: Iterable<TaskRecord>,
    runner: string,
    adopting: ReadonlySet<string>,
    withinMs = 60 * 60_000,
  ): void {
    for (const rec of records) {
      if (adopting.has(rec.task.taskId) || rec.runner !== runner || !isTerminal(rec.state))
        continue;
      if (Date.now() - Date.parse(rec.updated) > withinMs) continue;
      if ((rec.queue ?? this.#o.queue) !== this.#o.queue) continue;
      this.onState(rec);
    }
  }

  /** After a restart: the adopted tasks still running are followed from where their logs stand. */
  follow(adopted: readonly TaskRecord[]): void {
    for (const rec of adopted) if (rec.state === 'running') this.onState(rec);
  }

  /** The tasks with a log not yet settled (log-holds.ts): their files must stay. */
  unpublished(): TaskRecord[] {
    return this.#holds.records();
  }

  /**
   * Stops looking; the tasks go on and a restarted runner takes their logs up where they stand
   * (what is unpublished stays so: the executor, closed after, must not sweep it).
   */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    await Promise.allSettled([...this.#tails.values()].map((t) => t.idle()));
    this.#tails.clear();
  }

  /**
   * The largest piece, within what the stream and server take: a project with a small quota
   * has a small task-log stream (a quarter of the quota), and a piece over its bounds would be
   * refused for ever. Asked once; without the right to look, the settings stand.
   */
  #chunkBytes(): Promise<number> {
    this.#chunk ??= (async () => {
      let n = this.#o.settings.chunkBytes;
      const fit = (bytes: number) => Math.floor(((bytes - ENVELOPE_BYTES) * 3) / 4);
      const payload = this.#o.bus.nc.info?.max_payload;
      if (payload) n = Math.min(n, fit(payload));
      const info = await this.#o.bus.jsm.streams.info(this.#stream).catch(() => undefined);
      const c = info?.config;
      if (c && c.max_bytes > 0) n = Math.min(n, fit(Math.floor(c.max_bytes / 16)));
      const msgMax = c?.max_msg_size ?? 0;
      if (msgMax > 0) n = Math.min(n, fit(msgMax));
      return Math.max(256, n);
    })();
    return this.#chunk;
  }

  #ensureTimer(): void {
    if (this.#timer || this.#closed) return;
    this.#timer = setInterval(() => {
      for (const t of this.#tails.values()) t.tick();
    }, this.#o.settings.pollMs);
    this.#timer.unref();
  }
}

/** A log with nothing on the stream yet. */
function emptyPosition(): Position {
  return {
    attempt: 1,
    fileOffset: 0,
    offset: 0,
    index: 0,
    lastSeq: 0,
    capped: false,
    ended: false,
  };
}

interface TailOptions extends TaskLogPublisherOptions {
  readonly chunkBytes: () => Promise<number>;
}

class Tail {
  rec: TaskRecord;
  readonly #o: TailOptions;
  readonly #jsStream: string;
  readonly #stream: TaskLogStream;
  readonly #subject: string;
  #pos: Position | undefined;
  #running: Promise<void> = Promise.resolve();
  #busy = false;
  #dueAt = 0;
  #finishing = false;
  /** Over before the task's end was recorded: nothing was or will be published (quietEnd). */
  #quiet = false;
  #failures = 0;
  #warnedAt = Number.NEGATIVE_INFINITY;
  readonly #closed: () => boolean;

  constructor(
    o: TailOptions,
    jsStream: string,
    rec: TaskRecord,
    stream: TaskLogStream,
    closed: () => boolean,
    fresh = false,
  ) {
    if (fresh) this.#pos = emptyPosition();
    this.#o = o;
    this.#closed = closed;
    this.#jsStream = jsStream;
    this.rec = rec;
    this.#stream = stream;
    this.#subject = subjects.taskLog(o.bus.project, o.queue, rec.task.taskId, stream);
  }

  get #log() {
    return this.#o.bus.logger;
  }

  idle(): Promise<void> {
    return this.#running;
  }

  /** A poll tick: look at the file if due and not already looking. */
  tick(): void {
    if (this.#busy || this.#finishing || this.#quiet || performance.now() < this.#dueAt) return;
    this.#run(() => this.#look(false));
  }

  /**
   * The task is about to be recorded ended: true when this log is known to have nothing on the
   * stream (a task this runner created) and the file is empty or missing. From then on nothing
   * is published: the end record says the log is empty, and is its end.
   */
  async quietEnd(): Promise<boolean> {
    await this.#run(async () => {
      if (this.#quiet) return;
      const pos = this.#pos;
      if (!pos || pos.index > 0 || pos.ended) return;
      const got =
        this.rec.stdoutPath || this.rec.stderrPath
          ? await this.#o.read(this.rec, this.#stream, 0, 1)
          : undefined;
      this.#quiet = !got || got.size === 0;
    });
    return this.#quiet;
  }

  /**
   * The task ended: a last look at everything left (within the cap), then the end marker.
   * Resolves true once the log is settled (its end acknowledged, or given up on and logged),
   * false when closing stopped it first (a restart takes it up).
   */
  finish(): Promise<boolean> {
    if (this.#quiet) return this.#running.then(() => true);
    this.#finishing = true;
    let settled = false;
    const done = this.#run(async () => {
      // Tried until it is out: a follower waits for this end. Closing stops it (a restart resumes).
      for (let attempt = 1, delay = 250; ; attempt++, delay = Math.min(delay * 2, 5_000)) {
        try {
          await this.#look(true);
          settled = true;
          return;
        } catch (err) {
          const giveUp = attempt >= FINISH_ATTEMPTS;
          this.#log.warn(
            {
              err: String(err),
              subject: this.#subject,
              attempt,
              ...(giveUp ? {} : { retryInMs: delay }),
            },
            giveUp
              ? 'could not finish a task log; giving up (followers stop on their own once the task has ended)'
              : 'could not finish a task log; trying again',
          );
          settled = giveUp;
          if (giveUp || this.#closed() || this.#o.bus.closing) return;
          await new Promise((r) => setTimeout(r, delay));
        }
      }
    });
    return done.then(() => settled);
  }

  #run(fn: () => Promise<void>): Promise<void> {
    const next = this.#running.then(async () => {
      this.#busy = true;
      try {
        await fn();
      } catch (err) {
        // Said once a while, not at every look: a project provisioned before task logs (no
        // stream yet) or credentials issued before them would otherwise flood the log.
        this.#failures++;
        if (performance.now() - this.#warnedAt >= WARN_EVERY_MS) {
          this.#warnedAt = performance.now();
          this.#log.warn(
            { err: String(err), subject: this.#subject, failures: this.#failures },
            'task log not published; trying again (if the stream cp_<p>_tasklogs is missing or the runner may not publish on it, provision the project again and issue the runner new credentials)',
          );
        }
      } finally {
        this.#busy = false;
      }
    });
    this.#running = next;
    return next;
  }

  /** Where the log stands on the stream (its last piece), read again after a lost race. */
  async #load(): Promise<Position> {
    const last = await this.#o.bus.jsm.direct.getMessage(this.#jsStream, {
      last_by_subj: this.#subject,
    });
    if (!last) return emptyPosition();
    const c = decode(last.data, ['task.log'], this.#o.bus.project).body;
    const len = Buffer.from(c.data, 'base64').length;
    return {
      attempt: c.attempt,
      fileOffset: c.fileOffset + len,
      offset: c.offset + len,
      index: c.index + 1,
      lastSeq: last.seq,
      capped: c.mark === 'truncated' || c.mark === 'end',
      ended: c.mark === 'end',
    };
  }

  async #look(final: boolean): Promise<void> {
    for (let race = 0; ; race++) {
      try {
        await this.#lookOnce(final);
        return;
      } catch (err) {
        if (!(isWrongLastSequence(err) || err instanceof LogMovedError) || race > 5) throw err;
        // Someone else wrote this log meanwhile: take it up from where it stands now.
        this.#pos = undefined;
      }
    }
  }

  async #lookOnce(final: boolean): Promise<void> {
    this.#pos ??= await this.#load();
    const pos = this.#pos;
    if (pos.ended) return;
    const { maxBytes } = this.#o.settings;
    const chunkBytes = await this.#o.chunkBytes();
    const budget = TASK_LOG_MAX_MSGS_PER_SUBJECT - RESERVED_MSGS;
    let size = pos.fileOffset;
    let hasFile = false;
    for (let n = 0; final || n < PIECES_PER_LOOK; n++) {
      const got =
        this.rec.stdoutPath || this.rec.stderrPath
          ? await this.#o.read(this.rec, this.#stream, pos.fileOffset, chunkBytes)
          : undefined;
      if (!got) break;
      hasFile = true;
      size = got.size;
      if (pos.capped) break;
      if (got.size < pos.fileOffset) {
        await this.#publish(pos, { mark: 'restart', attempt: pos.attempt + 1, fileOffset: 0 });
        pos.attempt++;
        pos.fileOffset = 0;
        continue;
      }
      if (got.data.length === 0) break;
      const room = Math.min(maxBytes - pos.offset, got.data.length);
      if (room > 0) {
        const piece = got.data.subarray(0, room);
        await this.#publish(pos, { data: piece.toString('base64') });
        pos.offset += piece.length;
        pos.fileOffset += piece.length;
      }
      if (pos.offset >= maxBytes || pos.index >= budget) {
        await this.#publish(pos, { mark: 'truncated', limitBytes: maxBytes });
        pos.capped = true;
        break;
      }
      if (got.data.length < chunkBytes) break;
    }
    this.#dueAt = performance.now() + this.#o.settings.pollMs * Math.floor(pos.index / PACE);
    if (!final) return;
    const rec = this.rec;
    const state =
      rec.state === 'finished' || rec.state === 'failed' || rec.state === 'killed'
        ? rec.state
        : undefined;
    await this.#publish(pos, {
      mark: 'end',
      ...(state ? { state } : {}),
      ...(rec.exitCode !== undefined ? { exitCode: rec.exitCode } : {}),
      droppedBytes: hasFile ? Math.max(0, size - pos.fileOffset) : 0,
    });
    pos.ended = true;
  }

  async #publish(pos: Position, part: Partial<TaskLogChunk>): Promise<void> {
    const body: TaskLogChunk = {
      taskId: this.rec.task.taskId,
      stream: this.#stream,
      offset: pos.offset,
      index: pos.index,
      attempt: pos.attempt,
      fileOffset: pos.fileOffset,
      data: '',
      ...part,
    };
    const bus = this.#o.bus;
    const ack = await bus.jsPublish(this.#subject, bus.encode('task.log', body), {
      // A publish retried after a lost ack is dropped as a repeat, not stored twice.
      msgID: `${this.#subject}:${body.index}`,
      expectLastSubjectSequence: pos.lastSeq,
      timeoutMs: 5_000,
    });
    // A piece with this id is on the stream already (another writer's, within the duplicate
    // window): nothing was stored, and where the log stands is to be read again.
    if (ack.duplicate) throw new LogMovedError(this.#subject, body.index);
    pos.lastSeq = ack.seq;
    pos.index++;
  }
}

/** A piece was not stored because the log moved on under this writer: it is read again. */
class LogMovedError extends CpError {
  constructor(subject: string, index: number) {
    super(
      'CP_TASK_LOG_MOVED',
      `task log ${subject} already has piece ${index} from another writer; reading it again`,
      { retryable: true },
    );
  }
}
