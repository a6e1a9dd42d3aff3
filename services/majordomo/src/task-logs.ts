import { type Bus, readTaskLog, type TaskLogEvent, type TypedKv } from '@computepods/bus';
import {
  ServiceName,
  streams,
  subjects,
  TaskLogStream,
  type TaskRecord,
  TERMINAL_STATES,
} from '@computepods/protocol';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Access } from './access.js';
import { LogRefused, readConfinedLog } from './confined-log.js';
import { openEventStream, StreamCap, tokenOf } from './event-stream.js';

export interface TaskLogRoutesOptions {
  readonly bus: Bus;
  readonly access: Access;
  readonly tasks: TypedKv<typeof TaskRecord>;
  /** Folders a task's log file may be read from when NATS has none of it (CP_LOG_ROOTS). */
  readonly logRoots: readonly string[];
  /** Follow streams open at once (CP_HTTP_MAX_SSE). */
  readonly maxStreams: number;
}

// A follower of a task that ended without its runner finishing the log (the runner died for
// good, or ran before logs were published) stops this long after the end was recorded.
const ABANDON_AFTER_MS = 30_000;

const Query = z.object({
  stream: TaskLogStream.default('stderr'),
  follow: z
    .enum(['1', '0', 'true', 'false'])
    .default('0')
    .describe('1: stream the log as server-sent events until the task ends'),
  from: z.coerce
    .number()
    .int()
    .nonnegative()
    .optional()
    .describe('byte offset to start at (default 0; following, also the Last-Event-ID header)'),
});

/** The queue whose runner publishes a task's logs (records before queues: the resource's name). */
export function queueOf(rec: TaskRecord): string {
  return rec.queue ?? rec.task.resource;
}

/**
 * GET /api/logs/:taskId — a task's stdout or stderr from the project's task-log stream on NATS,
 * so it works whatever machine ran the task (local, SLURM via sudo or SSH, a pilot).
 *
 * Without `follow`: the bytes published so far from `from`, as text/plain, with headers saying
 * where they start and end (X-CP-Log-Offset, X-CP-Log-Next: the `from` to ask next) and what is
 * known of the rest (X-CP-Log-Ended: the task's end state; X-CP-Log-Truncated: the cap;
 * X-CP-Log-Restarts: attempts after the first; X-CP-Log-Missing: bytes no longer kept). A task
 * that ended with nothing on NATS (its log aged out, or it ran before logs were published) is
 * read from its file, only inside CP_LOG_ROOTS (confined-log.ts), with X-CP-Log-Source: file.
 *
 * With `follow=1`: server-sent events, each with `id:` the offset to resume at (Last-Event-ID):
 * `data` {offset, attempt, data: base64}, `restart` {offset, attempt}, `truncated` {offset,
 * limitBytes}, `missing` {offset, bytes}, and last `end` {offset, state, exitCode,
 * droppedBytes}, after which the response ends. The token is the Authorization header's, never
 * the URL's (read it with fetch streaming, not EventSource).
 */
export function registerTaskLogs(app: FastifyInstance, o: TaskLogRoutesOptions): void {
  const cap = new StreamCap('log follow', o.maxStreams);
  app.withTypeProvider<ZodTypeProvider>().get(
    '/api/logs/:taskId',
    {
      config: { role: 'viewer' },
      schema: {
        description:
          "A task's stdout or stderr from NATS (any runner, any machine): as far as published, or followed live as server-sent events (follow=1) until the task ends; resumable with from=<offset>. Headers of the plain read: x-cp-log-source (nats, or file: an ended task's log read from its runner's folder, all of it), x-cp-log-offset and x-cp-log-next (the bytes' range), x-cp-log-ended (the task's end state, once its runner published the log's end: nothing more will come), x-cp-log-truncated (the cap reached), x-cp-log-dropped, x-cp-log-restarts, x-cp-log-missing (bytes no longer kept)",
        // A task id as tasks have them (one subject token): anything else was a 500 once a
        // record sat under such a key (a fuzzed tasks bucket), as the log's subject was refused.
        params: z.object({
          taskId: z.string().regex(/^[A-Za-z0-9_.:-]{1,200}$/, 'letters, digits and "_.:-"'),
        }),
        querystring: Query,
      },
    },
    async (req, reply) => {
      const { taskId } = req.params;
      const rec = await o.tasks.get(taskId).then(
        (v) => v?.value,
        () => undefined,
      );
      if (!rec)
        throw new LogRefused(
          404,
          'CP_UNKNOWN_TASK',
          `no task ${taskId}; GET /api/tasks lists the tasks`,
        );
      const stream = req.query.stream;
      const follow = req.query.follow === '1' || req.query.follow === 'true';
      const lastId = Number(req.headers['last-event-id']);
      const from =
        req.query.from ?? (follow && Number.isInteger(lastId) && lastId >= 0 ? lastId : 0);
      const queue = queueOf(rec);
      if (!ServiceName.safeParse(queue).success)
        throw new LogRefused(
          404,
          'CP_TASK_NO_LOG',
          `no log for task ${taskId}: its record names no valid queue (${JSON.stringify(queue)})`,
        );
      if (!follow) {
        const published = await o.bus.jsm.direct.getMessage(streams.taskLogs(o.bus.project), {
          last_by_subj: subjects.taskLog(o.bus.project, queue, taskId, stream),
        });
        const path = stream === 'stdout' ? rec.stdoutPath : rec.stderrPath;
        // An output the end record lists as empty has nothing on NATS: readTaskLog ends it.
        const empty = rec.emptyLogs?.includes(stream) ?? false;
        if (!published && TERMINAL_STATES.includes(rec.state) && path && !empty) {
          const text = await readConfinedLog(path, o.logRoots);
          return reply
            .header('x-cp-log-source', 'file')
            .type('text/plain; charset=utf-8')
            .send(Buffer.from(text).subarray(from));
        }
        const parts: Buffer[] = [];
        const headers: Record<string, string> = { 'x-cp-log-source': 'nats' };
        let start: number | undefined;
        let next = from;
        let restarts = 0;
        let missing = 0;
        await readTaskLog(o.bus, {
          queue,
          taskId,
          streams: [stream],
          from,
          follow: false,
          record: async () => rec,
          onEvent: (e) => {
            if (e.kind === 'data') {
              start ??= e.offset;
              parts.push(e.data);
            } else if (e.kind === 'restart') restarts++;
            else if (e.kind === 'missing') missing += e.bytes;
            else if (e.kind === 'truncated') headers['x-cp-log-truncated'] = String(e.limitBytes);
            else if (e.kind === 'end' && e.state) {
              headers['x-cp-log-ended'] = e.state;
              if (e.droppedBytes) headers['x-cp-log-dropped'] = String(e.droppedBytes);
            }
            if (e.kind !== 'data') next = Math.max(next, e.offset);
            else next = e.offset + e.data.length;
          },
        });
        if (restarts) headers['x-cp-log-restarts'] = String(restarts);
        if (missing) headers['x-cp-log-missing'] = String(missing);
        return reply
          .headers({
            ...headers,
            'x-cp-log-offset': String(start ?? next),
            'x-cp-log-next': String(next),
          })
          .type('text/plain; charset=utf-8')
          .send(Buffer.concat(parts));
      }

      const es = openEventStream(reply, {
        cap,
        access: o.access,
        token: tokenOf(req),
        role: 'viewer',
        route: 'GET /api/logs/:taskId',
        hello: 'following',
      });
      if (!es) return reply;
      const { res } = es;
      const send = (e: TaskLogEvent) => {
        const { kind, stream: _s, ...rest } = e;
        const body =
          e.kind === 'data'
            ? { offset: e.offset, attempt: e.attempt, data: e.data.toString('base64') }
            : rest;
        const next = e.kind === 'data' ? e.offset + e.data.length : e.offset;
        // A slow reader slows the reading: nothing piles up here.
        if (!es.send(kind, JSON.stringify(body), next) && !res.destroyed)
          return new Promise<void>((r) => {
            res.once('drain', r);
            res.once('close', r);
          });
      };
      try {
        await readTaskLog(o.bus, {
          queue,
          taskId,
          streams: [stream],
          from,
          follow: true,
          signal: es.signal,
          record: async () => (await o.tasks.get(taskId))?.value,
          abandoned: async () => {
            const now = (await o.tasks.get(taskId))?.value;
            return (
              !now ||
              (TERMINAL_STATES.includes(now.state) &&
                Date.now() - Date.parse(now.updated) > ABANDON_AFTER_MS)
            );
          },
          onEvent: send,
        });
      } catch (err) {
        o.bus.logger.warn({ err: String(err), taskId }, 'following a task log failed');
        es.send(
          'error',
          JSON.stringify({
            error: {
              code: 'CP_LOG_UNAVAILABLE',
              message: `the log could not be read from NATS: ${(err as Error).message}; resume with from=<last id>`,
            },
          }),
        );
      } finally {
        es.end();
      }
    },
  );
}
