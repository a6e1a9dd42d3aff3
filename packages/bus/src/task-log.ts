import {
  streams as streamNames,
  subjects,
  type TaskLogChunk,
  type TaskLogStream,
  type TaskRecord,
  TERMINAL_STATES,
} from '@computepods/protocol';
import { DeliverPolicy, type JsMsg } from '@nats-io/jetstream';
import type { Bus } from './bus.js';
import { decode } from './decode.js';
import type { MessageInvalidError } from './errors.js';

/** What a reader of a task's log sees, in order, per stream. */
export type TaskLogEvent =
  | {
      readonly kind: 'data';
      readonly stream: TaskLogStream;
      readonly offset: number;
      readonly attempt: number;
      readonly data: Buffer;
    }
  /** The task's file started over: what follows is attempt `attempt`. */
  | {
      readonly kind: 'restart';
      readonly stream: TaskLogStream;
      readonly offset: number;
      readonly attempt: number;
    }
  /** The log reached its cap; the task's later output is not published. */
  | {
      readonly kind: 'truncated';
      readonly stream: TaskLogStream;
      readonly offset: number;
      readonly limitBytes: number;
    }
  /**
   * `bytes` of the log before `offset` are not there to read: they aged out or the stream was
   * full (the oldest logs go first), or the reader asked to start beyond what was published.
   */
  | {
      readonly kind: 'missing';
      readonly stream: TaskLogStream;
      readonly offset: number;
      readonly bytes: number;
    }
  /** Not following: the log as published so far ends here (the task may still be writing). */
  | { readonly kind: 'sofar'; readonly stream: TaskLogStream; readonly offset: number }
  /** The last event of a stream's log. `state` is absent when the runner never said it ended. */
  | {
      readonly kind: 'end';
      readonly stream: TaskLogStream;
      readonly offset: number;
      readonly state?: 'finished' | 'failed' | 'killed' | undefined;
      readonly exitCode?: number | null | undefined;
      readonly droppedBytes: number;
    };

export interface ReadTaskLogOptions {
  /** The queue whose runner ran the task (TaskRecord.queue, else its resource). */
  readonly queue: string;
  readonly taskId: string;
  /** One output, or both (each keeps its own offsets). */
  readonly streams: readonly TaskLogStream[];
  /** Byte offset to start at, in each stream read (default 0). */
  readonly from?: number;
  /** Keep reading as the log grows, until every stream's `end`; else stop at what is there now. */
  readonly follow: boolean;
  readonly signal?: AbortSignal;
  /**
   * Following only, asked every few seconds: true when the task has ended and its runner will
   * not finish the log (it died for good, or the task predates log publishing). The reader then
   * ends each open stream with an `end` without a state.
   */
  readonly abandoned?: () => Promise<boolean>;
  /**
   * The task's record as it stands now (the reader's KV get), asked at the start and, following,
   * every few seconds: an output its ended record lists in `emptyLogs` has nothing on NATS, not
   * even an end marker, and ends there with the record's state. Without it such a log is only
   * ended by `abandoned`.
   */
  readonly record?: () => Promise<TaskRecord | undefined>;
  /** Awaited: a slow writer slows the reading, nothing piles up. */
  readonly onEvent: (event: TaskLogEvent) => void | Promise<void>;
}

interface Cursor {
  /** Next byte offset expected, and next index. */
  next: number;
  nextIndex: number;
  /** Non-follow: the last sequence to read up to (0: nothing there). */
  target: number;
  ended: boolean;
}

const ABANDON_CHECK_MS = 2_000;

/**
 * Reads a task's stdout/stderr from the project's task-log stream (published by its runner as
 * it grows), from any machine with read credentials: resumable from a byte offset, each piece
 * checked to follow the previous one (a gap is reported as `missing`, a repeat is dropped).
 *
 *   await readTaskLog(bus, { queue: 'local', taskId, streams: ['stdout'], follow: true,
 *     onEvent: (e) => { if (e.kind === 'data') process.stdout.write(e.data); } });
 */
export async function readTaskLog(bus: Bus, o: ReadTaskLogOptions): Promise<void> {
  const p = bus.project;
  const stream = streamNames.taskLogs(p);
  const from = o.from ?? 0;
  const cursors = new Map<TaskLogStream, Cursor>();
  for (const s of o.streams) {
    const last = o.follow
      ? undefined
      : await bus.jsm.direct.getMessage(stream, {
          last_by_subj: subjects.taskLog(p, o.queue, o.taskId, s),
        });
    cursors.set(s, { next: 0, nextIndex: 0, target: last?.seq ?? 0, ended: false });
  }
  /** The ended record listing empty outputs, once seen: their cursors end with its state. */
  let quiet: TaskRecord | undefined;
  const askRecord = async (): Promise<void> => {
    // Not read (KV trouble): not known to be ended yet; asked again while following.
    const rec = await o.record?.().catch(() => undefined);
    if (rec && TERMINAL_STATES.includes(rec.state) && rec.emptyLogs?.length) quiet = rec;
  };
  const endQuiet = async (): Promise<void> => {
    const rec = quiet;
    if (!rec) return;
    for (const [s, c] of cursors) {
      if (c.ended || !rec.emptyLogs?.includes(s)) continue;
      c.ended = true;
      await o.onEvent(endOf(s, c.next, from, rec));
      if (!o.follow) await o.onEvent(soFar(s, c.next, from));
    }
  };
  await askRecord();
  await endQuiet();
  const open = () => [...cursors.values()].some((c) => !c.ended && (o.follow || c.target > 0));
  if (!open() || o.signal?.aborted) {
    if (!o.follow) for (const [s, c] of cursors) if (!c.ended) await o.onEvent(soFar(s, 0, from));
    return;
  }
  const [only] = o.streams;
  const filter =
    o.streams.length === 1 && only !== undefined
      ? subjects.taskLog(p, o.queue, o.taskId, only)
      : subjects.taskLogBoth(p, o.queue, o.taskId);
  const consumer = await bus.js.consumers.get(stream, {
    filter_subjects: filter,
    deliver_policy: DeliverPolicy.All,
  });
  const messages = await consumer.consume({ max_messages: 256 });
  const stop = () => messages.stop();
  o.signal?.addEventListener('abort', stop, { once: true });
  // Every open stream is an empty one the record ended: nothing more will come.
  const allQuiet = () => [...cursors].every(([s, c]) => c.ended || quiet?.emptyLogs?.includes(s));
  const timer =
    o.follow && (o.abandoned || o.record)
      ? setInterval(() => {
          void askRecord().then(
            () => {
              if (quiet && allQuiet()) stop();
            },
            () => undefined,
          );
          void o.abandoned?.().then(
            (gone) => {
              if (gone) {
                abandoned = true;
                stop();
              }
            },
            () => undefined,
          );
        }, ABANDON_CHECK_MS)
      : undefined;
  let abandoned = false;
  try {
    for await (const m of messages) {
      await take(m);
      await endQuiet();
      // Not following: done at the last piece there was when asked, or at the end of what the
      // stream holds (that piece may have gone since: aged out, or the stream was full).
      if (!o.follow && m.info.pending === 0) break;
      if (!open()) break;
    }
    await endQuiet();
    if (!o.follow)
      for (const [s, c] of cursors)
        if (!c.ended) {
          c.ended = true;
          await o.onEvent(soFar(s, c.next, from));
        }
    if (abandoned)
      for (const [s, c] of cursors) if (!c.ended) await o.onEvent(endOf(s, c.next, from));
  } finally {
    clearInterval(timer);
    o.signal?.removeEventListener('abort', stop);
    stop();
    await consumer.delete().catch(() => undefined);
  }

  async function take(m: JsMsg): Promise<void> {
    let chunk: TaskLogChunk;
    try {
      chunk = decode(m.data, ['task.log'], p).body;
    } catch (err) {
      const e = err as MessageInvalidError;
      bus.logger.warn(
        { subject: m.subject, reason: e.message },
        'ignored an invalid task log piece',
      );
      return;
    }
    const c = cursors.get(chunk.stream);
    if (!c || c.ended || chunk.taskId !== o.taskId) return;
    if (!o.follow && m.seq >= c.target) c.ended = true;
    if (chunk.index < c.nextIndex || chunk.offset < c.next) return; // a repeat
    const data = Buffer.from(chunk.data, 'base64');
    const end = chunk.offset + data.length;
    if (chunk.offset > c.next && chunk.offset > from) {
      const start = Math.max(c.next, from);
      await o.onEvent({
        kind: 'missing',
        stream: chunk.stream,
        offset: start,
        bytes: chunk.offset - start,
      });
    }
    c.next = end;
    c.nextIndex = chunk.index + 1;
    if (chunk.mark === 'end') {
      c.ended = true;
      await o.onEvent({
        kind: 'end',
        stream: chunk.stream,
        offset: Math.max(end, from),
        state: chunk.state,
        exitCode: chunk.exitCode,
        droppedBytes: chunk.droppedBytes ?? 0,
      });
      if (!o.follow) await o.onEvent(soFar(chunk.stream, c.next, from));
      return;
    }
    if (end <= from && !(chunk.mark && chunk.offset >= from)) return;
    if (chunk.mark === 'restart')
      await o.onEvent({
        kind: 'restart',
        stream: chunk.stream,
        offset: chunk.offset,
        attempt: chunk.attempt,
      });
    else if (chunk.mark === 'truncated')
      await o.onEvent({
        kind: 'truncated',
        stream: chunk.stream,
        offset: chunk.offset,
        limitBytes: chunk.limitBytes ?? chunk.offset,
      });
    else if (data.length > 0) {
      const skip = Math.max(0, from - chunk.offset);
      await o.onEvent({
        kind: 'data',
        stream: chunk.stream,
        offset: chunk.offset + skip,
        attempt: chunk.attempt,
        data: data.subarray(skip),
      });
    }
    if (c.ended && !o.follow) await o.onEvent(soFar(chunk.stream, c.next, from));
  }
}

/** An `end` for a log its runner will not finish, or (`rec`) one its end record says is empty. */
function endOf(stream: TaskLogStream, next: number, from: number, rec?: TaskRecord): TaskLogEvent {
  const state = rec?.state;
  return {
    kind: 'end',
    stream,
    offset: Math.max(next, from),
    ...(state === 'finished' || state === 'failed' || state === 'killed' ? { state } : {}),
    ...(rec?.exitCode !== undefined ? { exitCode: rec.exitCode } : {}),
    droppedBytes: 0,
  };
}

function soFar(stream: TaskLogStream, next: number, from: number): TaskLogEvent {
  return { kind: 'sofar', stream, offset: Math.max(next, from) };
}
