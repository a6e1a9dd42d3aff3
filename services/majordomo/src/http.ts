import { type Bus, jsonStream, subscribeMessages } from '@computepods/bus';
import {
  ArtefactRecord,
  ArtefactStatus,
  buckets,
  CpError,
  checkRelativePath,
  envelope,
  type Role,
  StatusReply,
  subjects,
  TaskControlReply,
  TaskRecord,
  type UnsafePathError,
} from '@computepods/protocol';
import swagger from '@fastify/swagger';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import {
  hasZodFastifySchemaValidationErrors,
  jsonSchemaTransform,
  serializerCompiler,
  validatorCompiler,
  type ZodTypeProvider,
} from 'fastify-type-provider-zod';
import { z } from 'zod';
import { Access, AccessError, type Principal } from './access.js';
import { allowedHosts, hostAllowed } from './allowed-hosts.js';
import { buildRecordEvent } from './build-record-event.js';
import { UiProject } from './config.js';
import { LogRefused } from './confined-log.js';
import { type EventStream, openEventStream, StreamCap, tokenOf } from './event-stream.js';
import { KvMirror } from './kv-mirror.js';
import type { MajorDomo } from './majordomo.js';
import { UnknownBuildError } from './queries.js';
import { registerResourceRoutes } from './resource-routes.js';
import { registerTaskLogs } from './task-logs.js';
import { serveUi } from './ui-assets.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The least role a route needs; a route without one needs admin. */
    role?: Role;
    /** An event stream: EventSource cannot set headers, so `?token=` is accepted too. */
    eventStream?: boolean;
    /** Needs no token (the web page's static files, ui-assets.ts); the Host check still applies. */
    public?: boolean;
  }
  interface FastifyRequest {
    principal?: Principal;
  }
}

const viewer = { role: 'viewer' } as const;
const member = { role: 'member' } as const;

export interface HttpOptions {
  readonly host: string;
  readonly port: number;
  /** The bootstrap admin token (CP_API_TOKEN or generated); per-user tokens live in KV. */
  readonly token: string;
}

const ErrorBody = z.object({
  error: z.object({ code: z.string(), message: z.string(), field: z.string().optional() }),
});
const PathQuery = z.object({
  path: z.string().min(1).describe('project-relative path, e.g. out/hello.upper'),
});

/** A REST refusal: its HTTP status, and the code (ours, or a runner's as it answered). */
class HttpError extends CpError<string> {
  constructor(
    readonly status: number,
    code: string,
    message: string,
    readonly field?: string,
  ) {
    super(code, message);
  }
}

/** The caller onRequest authenticated: every route but the public ones has one. */
function principalOf(req: FastifyRequest): Principal {
  if (!req.principal)
    throw new HttpError(401, 'CP_UNAUTHORIZED', 'this route needs a token, and none was checked');
  return req.principal;
}

function safePath(path: string): string {
  try {
    return checkRelativePath(path);
  } catch (err) {
    throw new HttpError(400, 'CP_UNSAFE_PATH', (err as UnsafePathError).message, 'path');
  }
}

/**
 * MajorDomo's REST API (zod-typed, OpenAPI at /openapi.json) and a server-sent-events stream of
 * every project event, for cpctrl, the web UI and scripts. Every route but GET /healthz needs a
 * per-user token (or the bootstrap token) whose user's role in the project allows it; the Host
 * header must be an allowed one (DNS rebinding). Both are checked in onRequest, before any
 * body is parsed or any schema validated, so an unauthenticated caller learns nothing of them.
 * Nothing here logs a URL (`?token=`) or a header.
 */
export async function startHttp(
  bus: Bus,
  md: MajorDomo,
  opts: HttpOptions,
): Promise<FastifyInstance> {
  const q = md.queries;
  const cfg = q.config;
  const app = Fastify({
    logger: false,
    forceCloseConnections: true,
    // Task ids run to MAX_STEM + 200 characters (a 1 KiB path's stem, %-escaped): fastify's
    // default of 100 answered GET /api/logs/<id> of such a task with a 414.
    routerOptions: { maxParamLength: 8 * 1024 },
    // A URL the router cannot take (a malformed %-escape, a parameter still too long) is refused
    // before any hook runs: Host and token are checked here as in onRequest, so a caller without
    // a token learns nothing of the routes, and the answer has the API's error shape (it was
    // fastify's own 400/414 body, to anyone).
    frameworkErrors: (err, req, reply) => {
      const refuse = (status: number, code: string, message: string) =>
        (reply as unknown as FastifyReply).code(status).send({ error: { code, message } });
      if (!hostAllowed(hosts, req.headers.host))
        return refuse(421, 'CP_HOST_NOT_ALLOWED', 'this API does not answer for this Host');
      try {
        access.authenticate(/^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '')?.[1]);
      } catch (e) {
        const a = e as AccessError;
        return refuse(a.status, a.code, a.message);
      }
      return err.code === 'FST_ERR_MAX_PARAM_LENGTH'
        ? refuse(414, 'CP_BAD_REQUEST', 'a path parameter is longer than 8 KiB')
        : refuse(400, 'CP_BAD_REQUEST', 'the URL is not valid: a malformed %-escape?');
    },
  }).withTypeProvider<ZodTypeProvider>();
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  await app.register(swagger, {
    openapi: {
      info: {
        title: 'ComputePods MajorDomo API',
        version: '0.1.0',
        description: `Project ${cfg.project}`,
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
    transform: jsonSchemaTransform,
  });

  app.setErrorHandler((err: Error & { statusCode?: number }, _req, reply) => {
    if (hasZodFastifySchemaValidationErrors(err)) {
      const issue = err.validation[0];
      const field =
        issue?.instancePath?.replace(/^\//, '').replaceAll('/', '.') ||
        ((issue?.params as { issue?: { path?: unknown[] } } | undefined)?.issue?.path ?? []).join(
          '.',
        );
      return reply.code(400).send({
        error: {
          code: 'CP_BAD_REQUEST',
          message: `${field || 'request'}: ${issue?.message ?? err.message}`,
          ...(field ? { field } : {}),
        },
      });
    }
    if (err instanceof HttpError || err instanceof AccessError || err instanceof LogRefused) {
      return reply.code(err.status).send({
        error: {
          code: err.code,
          message: err.message,
          ...(err instanceof HttpError && err.field ? { field: err.field } : {}),
        },
      });
    }
    // ProjectQueries' refusals, and MajorDomo's own for a build of an unknown artefact.
    const e = err as Error & { code?: string; field?: string };
    if (e.code === 'CP_UNKNOWN_ARTEFACT' || e.code === 'CP_UNKNOWN_BUILD')
      return reply.code(404).send({
        error: { code: e.code, message: e.message, ...(e.field ? { field: e.field } : {}) },
      });
    if (err.statusCode && err.statusCode < 500) {
      // Ours keep their code (a project inactive: 409 CP_PROJECT_INACTIVE, as over NATS);
      // fastify's own (a body too large, say) are bad requests.
      const code = err instanceof CpError ? err.code : 'CP_BAD_REQUEST';
      return reply.code(err.statusCode).send({ error: { code, message: err.message } });
    }
    bus.logger.error({ err }, 'HTTP handler failed');
    return reply.code(500).send({ error: { code: 'CP_INTERNAL', message: err.message } });
  });
  // Reached only with a valid token (onRequest authenticates 404s too). The API's error shape,
  // not fastify's {message, error, statusCode}; the URL is not echoed (it may carry ?token=).
  app.setNotFoundHandler((req, reply) =>
    reply.code(404).send({
      error: {
        code: 'CP_NOT_FOUND',
        message: `no ${req.method} route at this path; GET /openapi.json lists the API`,
      },
    }),
  );

  const access = await Access.start(bus, cfg.project, opts.token);
  app.addHook('onClose', async () => access.stop());
  // Filled once listening: the port may be 0 (a free one) until then.
  let hosts = new Set<string>();

  app.addHook('onRequest', async (req) => {
    if (req.routeOptions.url === '/healthz' && req.method === 'GET') return;
    if (!hostAllowed(hosts, req.headers.host))
      throw new HttpError(
        421,
        'CP_HOST_NOT_ALLOWED',
        // The allowed names are not listed: a rebinding page could read them.
        `this API does not answer for Host ${JSON.stringify(req.headers.host ?? '')}; call it by the address it listens on (e.g. 127.0.0.1:<port>), or add the name to MajorDomo's CP_HTTP_ALLOWED_HOSTS`,
      );
    if (req.routeOptions.config.public) return;
    const principal = access.authenticate(tokenOf(req));
    req.principal = principal;
    if (req.is404) return;
    // The route's pattern, never the URL: an event stream's URL may carry ?token=.
    const route = `${req.method} ${req.routeOptions.url}`;
    const who = { user: principal.user, tokenId: principal.tokenId, route };
    try {
      access.authorize(principal, req.routeOptions.config.role ?? 'admin', route);
    } catch (err) {
      bus.logger.info(who, 'API call refused: role');
      throw err;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') bus.logger.info(who, 'API call');
  });

  app.get(
    '/healthz',
    {
      schema: {
        description: 'Health probe; the only route without a token',
        security: [],
        response: { 200: z.object({ ok: z.literal(true) }) },
      },
    },
    async () => ({ ok: true as const }),
  );
  serveUi(app);
  app.get('/openapi.json', { config: viewer, schema: { hide: true } }, async () => app.swagger());
  app.get(
    '/api/whoami',
    {
      config: viewer,
      schema: {
        description:
          "The user and role behind the token sent, this project, and the other projects' pages (CP_UI_PROJECTS)",
        response: {
          200: z.object({
            user: z.string(),
            role: z.string(),
            tokenId: z.string().optional(),
            project: z.string(),
            projects: z.array(UiProject),
          }),
        },
      },
    },
    async (req) => ({
      ...principalOf(req),
      project: cfg.project,
      projects: [...cfg.uiProjects],
    }),
  );

  app.get(
    '/api/artefacts',
    {
      config: viewer,
      schema: {
        description: 'Artefacts and their states, optionally filtered',
        querystring: z.object({ status: ArtefactStatus.optional(), prefix: z.string().optional() }),
        response: { 200: z.array(ArtefactRecord) },
      },
    },
    async (req) => q.artefacts(req.query),
  );

  app.get(
    '/api/artefact',
    {
      config: viewer,
      schema: {
        description: 'One artefact, with the task that produces it and why it is (or was) dirty',
        querystring: PathQuery,
        response: {
          200: z.object({
            artefact: ArtefactRecord,
            producer: z.string().nullable(),
            why: z.array(z.object({ artefact: z.string(), because: z.string() })),
          }),
          404: ErrorBody,
        },
      },
    },
    async (req) => q.artefact(safePath(req.query.path)),
  );

  app.get(
    '/api/why',
    {
      config: viewer,
      schema: {
        description: 'The chain of changes that made an artefact dirty',
        querystring: PathQuery,
      },
    },
    async (req) => q.why(safePath(req.query.path)),
  );

  app.get(
    '/api/graph',
    {
      config: viewer,
      schema: {
        description: 'The dependency graph with components (cycles) marked',
        querystring: z.object({
          format: z.enum(['json', 'dot']).default('json'),
          plan: z
            .enum(['true', 'false'])
            .default('false')
            .describe('DOT only: just the pending work, not the whole graph'),
        }),
      },
    },
    async (req, reply) => {
      const answer = q.graph(req.query.format, req.query.plan === 'true');
      if (answer.format === 'dot') return reply.type('text/vnd.graphviz').send(answer.graph);
      // Streamed in small pieces, not one 29 MB string and its Buffer at 100k artefacts.
      return reply.type('application/json; charset=utf-8').send(jsonStream(answer.graph));
    },
  );

  app.get(
    '/api/plan',
    { config: viewer, schema: { description: 'Components in topological order with their state' } },
    async () => q.plan(),
  );
  app.get(
    '/api/status',
    {
      config: viewer,
      schema: {
        description:
          "What MajorDomo is doing now: a summary (counts per state, in flight, queued); with artefacts=true one page of the artefact records by path too, from after cursor (the answer's next), optionally only paths starting with prefix",
        querystring: z.object({
          artefacts: z.enum(['true', 'false']).default('false'),
          limit: z.coerce.number().int().min(1).max(10_000).default(1_000),
          cursor: z.string().min(1).max(4_096).optional(),
          prefix: z.string().min(1).max(4_096).optional(),
        }),
        response: { 200: StatusReply, 400: ErrorBody },
      },
    },
    async (req) =>
      q.status({
        artefacts: req.query.artefacts === 'true',
        limit: req.query.limit,
        cursor: req.query.cursor,
        prefix: req.query.prefix,
      }),
  );

  app.get(
    '/api/builds',
    { config: viewer, schema: { description: 'Builds in flight' } },
    async () => q.builds(),
  );
  app.post(
    '/api/builds',
    {
      config: member,
      schema: {
        description: '(Re)build an artefact and what it needs',
        body: z.object({ path: z.string().min(1), force: z.boolean().default(false) }),
        response: {
          200: z.object({ path: z.string(), status: z.string(), message: z.string() }),
          400: ErrorBody,
          401: ErrorBody,
          404: ErrorBody,
        },
      },
    },
    async (req) => {
      const path = safePath(req.body.path);
      return { path, ...(await q.requestBuild(path, req.body.force, `http-${req.id}`)) };
    },
  );
  app.delete(
    '/api/builds/:taskId',
    {
      config: member,
      schema: {
        description: 'Cancel a build in flight',
        params: z.object({ taskId: z.string().min(1) }),
      },
    },
    async (req) => {
      const cancelled = await q.cancelBuild(req.params.taskId, `http-${req.id}`);
      if (!cancelled) throw new UnknownBuildError(req.params.taskId);
      return { taskId: req.params.taskId, cancelled: true };
    },
  );

  const tasksKv = await bus.kv(buckets.tasks(cfg.project), TaskRecord, { history: 5 });
  // Read from memory, not the bucket per call (a flooded bucket made every call seconds long).
  // Mirrored from the first listing on, not from the start: the watch brings MajorDomo every
  // task record write (3 a task), and the server sends them, whether or not anyone lists tasks
  // (pnpm bench cbuild, #15). The first listing waits for the bucket's replay.
  let mirror: Promise<KvMirror<typeof TaskRecord>> | undefined;
  const tasks = (): Promise<KvMirror<typeof TaskRecord>> => {
    mirror ??= KvMirror.start(tasksKv, buckets.tasks(cfg.project), bus.logger).catch((err) => {
      mirror = undefined; // tried again by the next listing
      throw err;
    });
    return mirror;
  };
  app.addHook('onClose', async () => (await mirror?.catch(() => undefined))?.stop());
  app.get(
    '/api/tasks',
    {
      config: viewer,
      schema: {
        description: 'Task records (runner state), newest first',
        querystring: z.object({
          state: z.string().optional(),
          limit: z.coerce.number().int().min(1).max(10_000).default(200),
        }),
      },
    },
    async (req) => {
      const all: TaskRecord[] = [];
      for (const { value } of (await (await tasks()).values()).values())
        if (!req.query.state || value.state === req.query.state) all.push(value);
      return all.sort((a, b) => b.updated.localeCompare(a.updated)).slice(0, req.query.limit);
    },
  );
  app.post(
    '/api/tasks/:taskId/:action',
    {
      config: member,
      schema: {
        description: 'Pause, resume or kill a task',
        params: z.object({
          taskId: z.string().min(1),
          action: z.enum(['pause', 'resume', 'kill']),
        }),
      },
    },
    async (req) => {
      const data = JSON.stringify(
        envelope(
          'task.control',
          { taskId: req.params.taskId, action: req.params.action },
          { project: cfg.project, source: 'majordomo' },
        ),
      );
      const msg = await bus.nc
        .request(subjects.taskControl(cfg.project), data, { timeout: 5_000 })
        .catch(() => undefined);
      if (!msg)
        throw new HttpError(
          404,
          'CP_UNKNOWN_TASK',
          `no runner holds task ${req.params.taskId} (or none answered); GET /api/tasks lists them`,
          'taskId',
        );
      const checked = TaskControlReply.safeParse(parseJsonOrUndefined(msg.string()));
      if (!checked.success)
        throw new HttpError(
          502,
          'CP_UNAVAILABLE',
          `the runner's answer for task ${req.params.taskId} is not a task-control reply (${checked.error.issues[0]?.message ?? 'invalid'}); try again, and check the runner's version`,
        );
      const reply = checked.data;
      if (!reply.ok)
        throw new HttpError(
          409,
          reply.error?.code ?? 'CP_TASK_CONTROL',
          reply.error?.message ?? 'refused',
        );
      return reply.result;
    },
  );

  registerTaskLogs(app, {
    bus,
    access,
    tasks: tasksKv,
    logRoots: cfg.logRoots,
    maxStreams: cfg.maxSse,
  });

  await registerResourceRoutes(app, { bus, project: cfg.project });

  const cap = new StreamCap('event', cfg.maxSse);
  app.get(
    '/api/events',
    {
      config: { ...viewer, eventStream: true },
      schema: {
        description:
          'Server-sent events: every event of the project, live. EventSource cannot send headers, so ?token= is accepted here (only here).',
        querystring: z.object({ token: z.string().optional() }),
      },
    },
    async (req, reply) => {
      const apiPrefix = `cp.${cfg.project}.api.`;
      const logPrefix = `cp.${cfg.project}.tasklog.`;
      // Subscribed, and the subscription at the server, before the stream opens: a client that
      // acts once it sees the stream open (headers, ": connected") must get every event that
      // follows. Opened first, the first events could go before the SUB reached the server.
      let es: EventStream | undefined;
      const early: Array<[string, string]> = [];
      const sub = subscribeMessages(bus.nc, bus.logger, `cp.${cfg.project}.>`, (m) => {
        // Task logs are followed on their own route (task-logs.ts), not sent to every stream.
        if (m.subject.startsWith(apiPrefix) || m.subject.startsWith(logPrefix)) return;
        let type = 'message';
        try {
          type = (m.json<{ type?: string }>().type ?? type).replace(/[^\w.-]/g, '');
        } catch {
          return;
        }
        if (es) es.send(type, m.string());
        else early.push([type, m.string()]);
      });
      // Chefs' stored results: the build.result events they no longer publish (resultFromRecord).
      const records = subscribeMessages(
        bus.nc,
        bus.logger,
        subjects.buildRecords(cfg.project),
        (m) => {
          const data = buildRecordEvent(cfg.project, m);
          if (data === undefined) return;
          if (es) es.send('build.result', data);
          else early.push(['build.result', data]);
        },
      );
      const unsubscribe = () => {
        sub.unsubscribe();
        records.unsubscribe();
      };
      await bus.nc.flush().catch(() => undefined);
      if (req.raw.destroyed) {
        // The client left meanwhile: nothing to open.
        unsubscribe();
        return reply.hijack();
      }
      es = openEventStream(reply, {
        cap,
        access,
        token: tokenOf(req),
        role: 'viewer',
        route: 'GET /api/events',
        hello: 'connected',
      });
      if (!es) {
        unsubscribe();
        return reply;
      }
      for (const [type, data] of early) es.send(type, data);
      early.length = 0;
      es.signal.addEventListener('abort', unsubscribe);
      return reply;
    },
  );

  await app.listen({ host: opts.host, port: opts.port });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : opts.port;
  hosts = allowedHosts(opts.host, port, cfg.httpAllowedHosts);
  bus.logger.info(
    { allowedHosts: [...hosts], maxSse: cfg.maxSse, logRoots: cfg.logRoots },
    'HTTP API guarded: tokens, Host allowlist, event-stream cap, log roots',
  );
  return app;
}

/** The JSON value of `text`, or undefined when it is not JSON. */
function parseJsonOrUndefined(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
