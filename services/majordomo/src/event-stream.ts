import type { ServerResponse } from 'node:http';
import type { Role } from '@computepods/protocol';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Access, AccessError } from './access.js';

/** The bearer token of a request: the Authorization header, or `?token=` on event streams. */
export function tokenOf(req: FastifyRequest): string | undefined {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
  if (m) return m[1];
  if (req.routeOptions.config.eventStream) {
    const q = (req.query as { token?: unknown } | undefined)?.token;
    if (typeof q === 'string' && q) return q;
  }
  return undefined;
}

/** How many streams of one kind (events, log follows) may be open at once (CP_HTTP_MAX_SSE). */
export class StreamCap {
  open = 0;
  constructor(
    readonly kind: string,
    readonly max: number,
  ) {}
}

export interface EventStream {
  readonly res: ServerResponse;
  /** Aborted when the client goes, the token loses its right, or end() is called. */
  readonly signal: AbortSignal;
  /** Writes one server-sent event; false when the socket's buffer is full (wait for 'drain'). */
  send(event: string, data: string, id?: number): boolean;
  /** Ends the response and frees its place under the cap (once; later calls do nothing). */
  end(): void;
}

export interface OpenOptions {
  readonly cap: StreamCap;
  readonly access: Access;
  /** The caller's token, checked again whenever tokens or roles change. */
  readonly token: string | undefined;
  /** The role the route needs and its name, for the re-check. */
  readonly role: Role;
  readonly route: string;
  /** The first comment line, telling a client the stream is open. */
  readonly hello: string;
}

/**
 * Opens a server-sent-events response, or answers 503 naming the cap when `cap.max` streams of
 * its kind are already open (undefined then). A stream lives longer than one check: a revoked
 * token or a lost role ends it with an `error` event. A comment every 15 s keeps proxies from
 * closing an idle stream.
 */
export function openEventStream(reply: FastifyReply, o: OpenOptions): EventStream | undefined {
  const { cap } = o;
  if (cap.open >= cap.max) {
    void reply.code(503).send({
      error: {
        code: 'CP_TOO_MANY_STREAMS',
        message: `${cap.open} ${cap.kind} streams are open, the most this API serves (CP_HTTP_MAX_SSE=${cap.max}); close one, or raise CP_HTTP_MAX_SSE`,
      },
    });
    return undefined;
  }
  cap.open++;
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, {
    'content-type': 'text/event-stream',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
  });
  res.write(`: ${o.hello}\n\n`);
  const stop = new AbortController();
  const send = (event: string, data: string, id?: number) =>
    res.write(`${id === undefined ? '' : `id: ${id}\n`}event: ${event}\ndata: ${data}\n\n`);
  const ping = setInterval(() => res.write(': ping\n\n'), 15_000);
  const stopWatching = o.access.onChange(() => {
    try {
      o.access.authorize(o.access.authenticate(o.token), o.role, o.route);
    } catch (err) {
      const a = err as AccessError;
      send('error', JSON.stringify({ error: { code: a.code, message: a.message } }));
      end();
    }
  });
  let ended = false;
  const end = () => {
    if (ended) return;
    ended = true;
    cap.open--;
    clearInterval(ping);
    stopWatching();
    stop.abort();
    res.end();
  };
  res.on('close', end);
  return { res, signal: stop.signal, send, end };
}
