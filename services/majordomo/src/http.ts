import { timingSafeEqual } from 'node:crypto';
import type { Bus } from '@computepods/bus';
import {
  ArtefactRecord,
  ArtefactStatus,
  buckets,
  checkRelativePath,
  envelope,
  Profile,
  Resource,
  subjects,
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
import type { MajorDomo } from './majordomo.js';

export interface HttpOptions {
  readonly host: string;
  readonly port: number;
  /** Mutations need `Authorization: Bearer <token>`. */
  readonly token: string;
}

const ErrorBody = z.object({
  error: z.object({ code: z.string(), message: z.string(), field: z.string().optional() }),
});
const PathQuery = z.object({
  path: z.string().min(1).describe('project-relative path, e.g. out/hello.upper'),
});

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }
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
 * every project event, for cpctrl, the web UI and scripts. Reads are open; mutations need the
 * bearer token.
 */
export async function startHttp(
  bus: Bus,
  md: MajorDomo,
  opts: HttpOptions,
): Promise<FastifyInstance> {
  const app = Fastify({
    logger: false,
    forceCloseConnections: true,
  }).withTypeProvider<ZodTypeProvider>();
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  await app.register(swagger, {
    openapi: {
      info: {
        title: 'ComputePods MajorDomo API',
        version: '0.1.0',
        description: `Project ${md.cfg.project}`,
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
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
    if (err instanceof HttpError) {
      return reply.code(err.status).send({
        error: {
          code: err.code,
          message: err.message,
          ...(err.field ? { field: err.field } : {}),
        },
      });
    }
    const e = err as Error & { code?: string; field?: string };
    if (e.code === 'CP_UNKNOWN_ARTEFACT')
      return reply.code(404).send({ error: { code: e.code, message: e.message, field: 'path' } });
    if (err.statusCode && err.statusCode < 500) {
      return reply
        .code(err.statusCode)
        .send({ error: { code: 'CP_BAD_REQUEST', message: err.message } });
    }
    bus.logger.error({ err }, 'HTTP handler failed');
    return reply.code(500).send({ error: { code: 'CP_INTERNAL', message: err.message } });
  });

  const token = Buffer.from(opts.token);
  const requireToken = async (req: FastifyRequest, _reply: FastifyReply) => {
    const given = Buffer.from((req.headers.authorization ?? '').replace(/^Bearer\s+/i, ''));
    if (given.length !== token.length || !timingSafeEqual(given, token)) {
      throw new HttpError(
        401,
        'CP_UNAUTHORIZED',
        'this call changes state: send "Authorization: Bearer <token>" (CP_API_TOKEN)',
      );
    }
  };
  const secured = { security: [{ bearer: [] }] };

  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  app.get(
    '/api/health',
    { schema: { response: { 200: z.object({ ok: z.boolean(), project: z.string() }) } } },
    async () => ({
      ok: true,
      project: md.cfg.project,
    }),
  );

  app.get(
    '/api/artefacts',
    {
      schema: {
        description: 'Artefacts and their states, optionally filtered',
        querystring: z.object({ status: ArtefactStatus.optional(), prefix: z.string().optional() }),
        response: { 200: z.array(ArtefactRecord) },
      },
    },
    async (req) =>
      md.artefacts
        .all()
        .filter(
          (a) =>
            (!req.query.status || a.status === req.query.status) &&
            (!req.query.prefix || a.path.startsWith(req.query.prefix)),
        ),
  );

  app.get(
    '/api/artefact',
    {
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
    async (req) => {
      const path = safePath(req.query.path);
      const rec = md.artefacts.get(path);
      if (!rec)
        throw new HttpError(
          404,
          'CP_UNKNOWN_ARTEFACT',
          `no artefact ${path}; GET /api/artefacts lists them`,
          'path',
        );
      return {
        artefact: rec,
        producer: md.dm.producerOf(path) ?? null,
        why: md.dm.why(path).map((w) => ({ ...w })),
      };
    },
  );

  app.get(
    '/api/why',
    {
      schema: {
        description: 'The chain of changes that made an artefact dirty',
        querystring: PathQuery,
      },
    },
    async (req) => md.dm.why(safePath(req.query.path)),
  );

  app.get(
    '/api/graph',
    {
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
      if (req.query.format === 'dot')
        return reply
          .type('text/vnd.graphviz')
          .send(md.dm.toDOT({ plan: req.query.plan === 'true' }));
      return md.dm.toJSON();
    },
  );

  app.get(
    '/api/plan',
    { schema: { description: 'Components in topological order with their state' } },
    async () => md.dm.plan(),
  );
  app.get('/api/status', { schema: { description: 'What MajorDomo is doing now' } }, async () =>
    md.status(),
  );

  app.get('/api/builds', { schema: { description: 'Builds in flight' } }, async () => md.builds());
  app.post(
    '/api/builds',
    {
      preHandler: requireToken,
      schema: {
        ...secured,
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
      return { path, ...(await md.requestBuild(path, req.body.force, `http-${req.id}`)) };
    },
  );
  app.delete(
    '/api/builds/:taskId',
    {
      preHandler: requireToken,
      schema: {
        ...secured,
        description: 'Cancel a build in flight',
        params: z.object({ taskId: z.string().min(1) }),
      },
    },
    async (req) => {
      const cancelled = await md.cancelBuild(req.params.taskId, `http-${req.id}`);
      if (!cancelled)
        throw new HttpError(
          404,
          'CP_UNKNOWN_BUILD',
          `no build in flight for task ${req.params.taskId}; GET /api/builds lists them`,
          'taskId',
        );
      return { taskId: req.params.taskId, cancelled: true };
    },
  );

  const tasksKv = await bus.kv(buckets.tasks(md.cfg.project), TaskRecord, { history: 5 });
  app.get(
    '/api/tasks',
    {
      schema: {
        description: 'Task records (runner state), newest first',
        querystring: z.object({
          state: z.string().optional(),
          limit: z.coerce.number().int().min(1).max(10_000).default(200),
        }),
      },
    },
    async (req) => {
      const all = [...(await tasksKv.entries()).values()].map((v) => v.value);
      return all
        .filter((t) => !req.query.state || t.state === req.query.state)
        .sort((a, b) => b.updated.localeCompare(a.updated))
        .slice(0, req.query.limit);
    },
  );
  app.post(
    '/api/tasks/:taskId/:action',
    {
      preHandler: requireToken,
      schema: {
        ...secured,
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
          { project: md.cfg.project, source: 'majordomo' },
        ),
      );
      const msg = await bus.nc
        .request(subjects.taskControl(md.cfg.project), data, { timeout: 5_000 })
        .catch(() => undefined);
      if (!msg)
        throw new HttpError(
          404,
          'CP_UNKNOWN_TASK',
          `no runner holds task ${req.params.taskId} (or none answered); GET /api/tasks lists them`,
          'taskId',
        );
      const reply = msg.json<{
        ok: boolean;
        result?: unknown;
        error?: { code: string; message: string };
      }>();
      if (!reply.ok)
        throw new HttpError(
          409,
          reply.error?.code ?? 'CP_TASK_CONTROL',
          reply.error?.message ?? 'refused',
        );
      return reply.result;
    },
  );

  app.get(
    '/api/logs/:taskId',
    {
      schema: {
        description: "A task's stdout or stderr (as far as written)",
        params: z.object({ taskId: z.string().min(1) }),
        querystring: z.object({ stream: z.enum(['stdout', 'stderr']).default('stderr') }),
      },
    },
    async (req, reply) => {
      const rec = (await tasksKv.get(req.params.taskId))?.value;
      if (!rec)
        throw new HttpError(404, 'CP_UNKNOWN_TASK', `no task ${req.params.taskId}`, 'taskId');
      const path = req.query.stream === 'stdout' ? rec.stdoutPath : rec.stderrPath;
      if (!path)
        throw new HttpError(
          404,
          'CP_NO_LOG',
          `task ${req.params.taskId} has no ${req.query.stream} yet (state ${rec.state})`,
        );
      const { readFile } = await import('node:fs/promises');
      const text = await readFile(path, 'utf8').catch(() => {
        throw new HttpError(
          404,
          'CP_NO_LOG',
          `the ${req.query.stream} of ${req.params.taskId} is at ${path} on the runner's host, not readable here`,
        );
      });
      return reply.type('text/plain; charset=utf-8').send(text);
    },
  );

  for (const [kind, schema, bucket] of [
    ['resources', Resource, buckets.resources()],
    ['profiles', Profile, buckets.profiles()],
  ] as const) {
    const kv = await bus.kv(bucket, schema as z.ZodType);
    app.get(`/api/${kind}`, { schema: { description: `Configured ${kind}` } }, async () =>
      [...(await kv.entries()).values()].map((v) => v.value),
    );
  }

  app.get(
    '/api/events',
    { schema: { description: 'Server-sent events: every event of the project, live' } },
    (req, reply) => {
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, {
        'content-type': 'text/event-stream',
        'cache-control': 'no-cache',
        connection: 'keep-alive',
        'x-accel-buffering': 'no',
      });
      res.write(': connected\n\n');
      const apiPrefix = `cp.${md.cfg.project}.api.`;
      const sub = bus.nc.subscribe(`cp.${md.cfg.project}.>`, {
        callback: (_err, m) => {
          if (m.subject.startsWith(apiPrefix)) return;
          let type = 'message';
          try {
            type = (m.json<{ type?: string }>().type ?? type).replace(/[^\w.-]/g, '');
          } catch {
            return;
          }
          res.write(`event: ${type}\ndata: ${m.string()}\n\n`);
        },
      });
      const ping = setInterval(() => res.write(': ping\n\n'), 15_000);
      req.raw.on('close', () => {
        clearInterval(ping);
        sub.unsubscribe();
      });
    },
  );

  await app.listen({ host: opts.host, port: opts.port });
  return app;
}
